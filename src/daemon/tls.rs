//! The service's endpoints over TLS (`--tls-cert`, `--tls-key`): `/snapshot`
//! carries people's addresses and a bearer token, so it must not cross a
//! network in clear text.
//!
//! The files are checked before every handshake (two `stat`s): when either
//! changed (cert-manager renewing a Secret, certbot, an operator), the pair
//! is read again and used from the next connection on. A pair that cannot
//! be used (half-written, mismatched) is logged once and the previous one
//! kept, so a renewal in progress never takes the endpoints down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::input_file::{ReadError, read_capped};

/// Largest certificate or key file read: a chain of a few certificates is a
/// few kilobytes.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A client that connects and never finishes its handshake is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Nor may it take longer than this to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: ReadError,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}",
        path.display()
    )]
    NoKey { path: PathBuf, detail: String },
    #[error("the certificate {} and key {} cannot be served: {detail}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// The certificate chain and private key files, both PEM.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What identifies a version of the two files: a replaced file (rename,
/// Kubernetes' `..data` swap, which `stat` follows) has a new inode, an
/// edited one a new size or time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Stamp(Vec<(u64, u64, i128, i128)>);

fn stamp(files: &TlsFiles) -> Stamp {
    Stamp(
        [&files.cert, &files.key]
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => file_stamp(&m),
                // Missing for a moment during a swap: a stamp of its own,
                // so the pair is tried again once the file is back.
                Err(_) => (0, 0, -1, -1),
            })
            .collect(),
    )
}

#[cfg(unix)]
fn file_stamp(m: &std::fs::Metadata) -> (u64, u64, i128, i128) {
    use std::os::unix::fs::MetadataExt;
    (
        m.ino(),
        m.len(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    )
}

#[cfg(not(unix))]
fn file_stamp(m: &std::fs::Metadata) -> (u64, u64, i128, i128) {
    let nanos = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    (0, m.len(), nanos, 0)
}

/// Reads and checks the pair: the key must be the certificate's.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |what, path: &Path| {
        read_capped(path, MAX_PEM_BYTES).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", &files.cert)?;
    let key_pem = read("private key", &files.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    // The error names the PEM problem, never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    let unusable = |detail: String| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail,
    };
    // One crypto provider for the process: aws-lc-rs, as reqwest uses.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| unusable(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration in force, reloaded when the files change.
pub struct Reloading {
    files: TlsFiles,
    state: Mutex<State>,
}

struct State {
    config: Arc<ServerConfig>,
    /// The files as last tried, loaded or not: an unusable pair is logged
    /// once, not at every handshake.
    tried: Stamp,
}

impl Reloading {
    /// Loads the pair; at start a bad pair is an error, not a warning.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let tried = stamp(&files);
        let config = load(&files)?;
        Ok(Reloading {
            files,
            state: Mutex::new(State { config, tried }),
        })
    }

    /// The configuration for the next handshake: the files read again first
    /// if either changed since last tried.
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = stamp(&self.files);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now != state.tried {
            state.tried = now;
            match load(&self.files) {
                Ok(config) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                    state.config = config;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "the changed TLS certificate or key cannot be used; still serving the previous one"
                ),
            }
        }
        state.config.clone()
    }
}

/// Serves `app` over TLS on `listener` until `stop`, then lets requests in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<Reloading>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: pause, do not spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                connections.spawn(connection(stream, app.clone(), tls.clone(), stop.clone()));
            }
        }
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    tls: Arc<Reloading>,
    stop: CancellationToken,
) {
    // Off the runtime: the stamp check and a reload touch the filesystem.
    let Ok(config) = tokio::task::spawn_blocking(move || tls.current()).await else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match accepted {
            Ok(Ok(stream)) => stream,
            // A scanner, a client that does not trust the certificate, plain
            // HTTP sent to the TLS port: the client sees why; not worth a
            // warning per connection here.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
