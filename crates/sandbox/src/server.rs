//! The router and the accept loop.
//!
//! `serve` drives hyper itself (rather than `axum::serve`) for one reason: the
//! dropped-connection fault needs to close a connection from inside a handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::faults::{ConnectionKiller, fault_layer};
use super::problem::{Problem, rate_headers_layer, request_id_layer};
use super::{Sandbox, admin, api, oauth};

pub(crate) fn router(sb: &Sandbox) -> Router {
    let api = api::routes().route_layer(middleware::from_fn_with_state(sb.clone(), fault_layer));
    let oauth =
        oauth::routes().route_layer(middleware::from_fn_with_state(sb.clone(), fault_layer));
    let mut app = Router::new().merge(api).merge(oauth);
    if sb.inner.config.admin_endpoints {
        app = app.merge(admin::routes());
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id_layer))
        .layer(middleware::from_fn_with_state(
            sb.clone(),
            rate_headers_layer,
        ))
        .with_state(sb.clone())
}

async fn not_found() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "No such endpoint.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "This endpoint does not support this method.",
    )
    .into_response()
}

/// Serves `sandbox` on `listener` until `shutdown` completes, then lets requests in
/// flight finish, writes the state file a last time and returns.
pub async fn serve(
    listener: TcpListener,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(&sandbox);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: pause instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                connections.spawn(connection(stream, app.clone(), stop_rx.clone()));
            }
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    sandbox.save().map_err(std::io::Error::other)
}

async fn connection(stream: tokio::net::TcpStream, app: Router, mut stop: watch::Receiver<bool>) {
    let kill = Arc::new(Notify::new());
    let killer = ConnectionKiller(kill.clone());
    let app = app.layer(axum::Extension(killer));
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = kill.notified() => return, // dropping `conn` closes the socket unanswered
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        () = kill.notified() => {}
    }
}
