//! SIGHUP: read the TLS files again. The certificate served (`[tls]`) is
//! swapped for new handshakes if its files load, and kept if they do not;
//! destinations' client certificates are read again at their next
//! delivery. Without this listener SIGHUP would end the process, its
//! default; actix-web itself stops only on SIGINT, SIGTERM and SIGQUIT.

use std::sync::Arc;

use actix_web::rt::signal::unix::{SignalKind, signal};

use super::{ClientTls, ServingCert};

/// Starts listening for SIGHUP; must run inside the actix system. From the
/// moment it returns, SIGHUP reloads instead of ending the process.
pub fn on_hangup(serving: Option<Arc<ServingCert>>, clients: Arc<ClientTls>) -> std::io::Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            reload(serving.as_deref(), &clients);
        }
    });
    Ok(())
}

fn reload(serving: Option<&ServingCert>, clients: &ClientTls) {
    clients.reload();
    match serving.map(ServingCert::reload) {
        Some(Ok(())) => tracing::info!("SIGHUP: TLS certificates reloaded; new connections get the new certificate"),
        Some(Err(e)) => tracing::warn!(
            error = %e,
            "SIGHUP: the TLS certificate could not be reloaded; the one in use is kept"
        ),
        None => tracing::info!("SIGHUP: destinations' client certificates will be read again"),
    }
}
