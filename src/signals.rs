//! The signals that stop a command: SIGTERM (systemd, Kubernetes, `kill`)
//! and SIGINT (Ctrl-C). Every long-running command (`apply`, `run`,
//! `sandbox serve`) stops the same way: it cancels a token and finishes
//! the write in flight. The service's SIGHUP (re-read) is its own, in
//! `daemon`.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_termination(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                let _ = tokio::signal::ctrl_c().await;
                token.cancel();
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}
