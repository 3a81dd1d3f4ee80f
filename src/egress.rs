//! Where the engine may send: deliveries, queries and alerts go only to
//! URLs and addresses these rules allow.
//!
//! - A URL with credentials in it (`https://user:pass@host/`) is refused
//!   when it is configured: the credentials would sit in clear in the
//!   journal, in the operator API's answers and in logs, and the HTTP
//!   client would not send them anyway.
//! - With `[delivery] deny_private_networks = true`, the engine refuses to
//!   send to loopback, private (RFC 1918, IPv6 unique local), link-local
//!   (where cloud metadata services answer, `169.254.169.254`,
//!   `fd00:ec2::254`), shared (RFC 6598), unspecified, multicast and
//!   reserved addresses. A URL whose host is such an address is refused
//!   when configured, and checked again before every request (the setting
//!   may have been turned on after). A host name is resolved at each new
//!   connection, and refused if any address it resolves to is denied, so a
//!   name cannot be pointed at an internal service later. Off by default:
//!   most integration engines deliver inside the hospital's own network.

use std::{
    error::Error as StdError,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs},
};

use actix_tls::connect::Resolve;
use futures_util::future::LocalBoxFuture;

/// The rules for outgoing requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Egress {
    /// `[delivery] deny_private_networks`.
    pub deny_private_networks: bool,
}

impl Egress {
    /// Checks a configured URL: no credentials, and, when private networks
    /// are denied, no denied address as its host.
    pub fn check_url(&self, text: &str) -> Result<(), String> {
        let url = url::Url::parse(text).map_err(|e| format!("url '{text}' is not a valid URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "url '{}' holds credentials (user:password@): they would be stored and shown in clear; \
                 give the receiver a URL without them",
                redacted(&url)
            ));
        }
        self.check_host(&url)
    }

    /// Checks a URL before a request: with private networks denied, a
    /// denied address literal is refused (names are checked as they are
    /// resolved). Free when they are not denied.
    pub fn check(&self, url: &str) -> Result<(), String> {
        if !self.deny_private_networks {
            return Ok(());
        }
        self.check_host(&url::Url::parse(url).map_err(|e| format!("url '{url}': {e}"))?)
    }

    /// Checks a URL's host: a denied address literal is refused.
    pub fn check_host(&self, url: &url::Url) -> Result<(), String> {
        if !self.deny_private_networks {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        match denied(ip) {
            Some(why) => Err(format!("{ip} is {why}: refused by delivery.deny_private_networks")),
            None => Ok(()),
        }
    }

    /// The resolver for the HTTP clients, when names must be checked.
    pub fn resolver(&self) -> Option<actix_tls::connect::Resolver> {
        self.deny_private_networks.then(|| actix_tls::connect::Resolver::custom(PublicOnly))
    }
}

/// The URL with its password hidden, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Why `ip` is denied when private networks are, if it is.
pub fn denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => denied_v4(v4),
            None => denied_v6(v6),
        },
    }
}

fn denied_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address (RFC 1918)")
    } else if ip.is_link_local() {
        Some("a link-local address, where cloud metadata services answer")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("a shared address (RFC 6598)")
    } else if a == 0 {
        Some("an address of 'this' network")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol address (192.0.0.0/24)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else {
        None
    }
}

fn denied_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() || ip.is_unspecified() {
        Some("a loopback or unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique local address (fc00::/7), where some cloud metadata services answer")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// Resolves host names with the system's resolver, refusing a name any of
/// whose addresses is denied.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            let target = format!("{host}:{port}");
            // The system's resolver blocks: off the actor's thread.
            let resolved = actix_web::rt::task::spawn_blocking(move || target.to_socket_addrs().map(Vec::from_iter))
                .await
                .map_err(|e| Box::new(e) as Box<dyn StdError>)?;
            let addrs = resolved.map_err(|e| Box::new(e) as Box<dyn StdError>)?;
            if let Some((addr, why)) = addrs.iter().find_map(|a| denied(a.ip()).map(|why| (a, why))) {
                let text =
                    format!("{host} resolves to {}, {why}: refused by delivery.deny_private_networks", addr.ip());
                return Err(text.into());
            }
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_link_local_and_metadata_addresses_are_denied_and_public_ones_not() {
        let denied_ips = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.0.192",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ];
        for ip in denied_ips {
            assert!(denied(ip.parse().unwrap()).is_some(), "{ip} was allowed");
        }
        for ip in ["8.8.8.8", "203.0.114.1", "100.128.0.1", "172.32.0.1", "2001:4860:4860::8888"] {
            assert_eq!(denied(ip.parse().unwrap()), None, "{ip} was denied");
        }
    }

    #[test]
    fn urls_with_credentials_are_refused_and_literals_checked_only_when_asked() {
        let open = Egress::default();
        let closed = Egress { deny_private_networks: true };
        let err = open.check_url("https://user:secret@lab.example/in").unwrap_err();
        assert!(err.contains("credentials") && !err.contains("secret"), "{err}");
        assert!(open.check_url("https://user@lab.example/in").is_err());
        assert!(open.check_url("http://169.254.169.254/latest/meta-data").is_ok());
        let err = closed.check_url("http://169.254.169.254/latest/meta-data").unwrap_err();
        assert!(err.contains("169.254.169.254") && err.contains("deny_private_networks"), "{err}");
        assert!(closed.check_url("http://[::ffff:127.0.0.1]:8080/").is_err());
        assert!(closed.check_url("https://lab.example/in").is_ok(), "names are checked when resolved");
    }
}
