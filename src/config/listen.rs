//! `listen`: an address, or a host name and port resolved at start-up
//! (`localhost:8080`), so a deployment can name its interface.

use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Deserializer};

/// `text` as an address to listen on: `host:port`, the host an IP address
/// or a name that resolves (its first address is taken).
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .ok_or_else(|| format!("listen '{text}' is not host:port (e.g. 127.0.0.1:8080 or localhost:8080)"))?;
    let port: u16 = port.parse().map_err(|e| format!("listen '{text}': port: {e}"))?;
    let mut addrs =
        (host, port).to_socket_addrs().map_err(|e| format!("listen '{text}': '{host}' does not resolve: {e}"))?;
    addrs.next().ok_or_else(|| format!("listen '{text}': '{host}' resolves to no address"))
}

/// Deserializes `listen` from its text, resolving a host name.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    resolve(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_resolve() {
        assert_eq!(resolve("127.0.0.1:8080").unwrap(), SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(resolve("[::1]:0").unwrap().port(), 0);
        let local = resolve("localhost:8081").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8081, "{local}");
    }

    #[test]
    fn what_does_not_resolve_is_named() {
        let err = resolve("no-such-host.invalid:8080").unwrap_err();
        assert!(err.contains("no-such-host.invalid") && err.contains("does not resolve"), "{err}");
        let err = resolve("localhost").unwrap_err();
        assert!(err.contains("host:port"), "{err}");
        assert!(resolve("localhost:http").is_err());
    }
}
