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

use super::faults::Fault;
use super::problem::{Problem, rate_headers_layer, request_id_layer};
use super::ratelimit::RateInfo;
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

/// Lets a handler close its own connection without answering. [`serve`] puts one in
/// every request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionKiller(pub std::sync::Arc<tokio::sync::Notify>);

/// Middleware on the API (and, if configured, the token endpoint): the faults
/// [`super::faults`] draws, carried out on the wire.
pub(crate) async fn fault_layer(
    axum::extract::State(sb): axum::extract::State<Sandbox>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    // The authorize page is a browser hop, not something a client retries: spared.
    let spared_oauth = path == oauth::AUTHORIZE_PATH;
    let is_token = path == oauth::TOKEN_PATH;
    let is_read = req.method() == axum::http::Method::GET;
    let (latency, fault) = {
        let mut rt = super::lock(&sb.inner.runtime);
        let spared_read = is_read && !is_token && rt.faults.settings.writes_only;
        if spared_oauth || spared_read || (is_token && !rt.faults.settings.include_oauth) {
            (Duration::ZERO, None)
        } else {
            (rt.faults.settings.latency(), rt.faults.next())
        }
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::Drop) => match req.extensions().get::<ConnectionKiller>() {
            Some(killer) => {
                killer.0.notify_one();
                // The connection task drops this future with the connection.
                std::future::pending().await
            }
            // Served without `serve` (a bare router): the closest thing is a gateway error.
            None => StatusCode::BAD_GATEWAY.into_response(),
        },
        Some(Fault::DropAfter) => {
            let killer = req.extensions().get::<ConnectionKiller>().cloned();
            let _answer = next.run(req).await;
            match killer {
                Some(killer) => {
                    killer.0.notify_one();
                    std::future::pending().await
                }
                None => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Some(Fault::TooManyRequests) => {
            super::lock(&sb.inner.counters).forced429();
            let reset = super::clock::seconds_to_next_minute(sb.now());
            Problem::rate_limited(RateInfo {
                allowed: false,
                limit: sb.inner.config.limits.team_per_minute,
                remaining: 0,
                reset_secs: reset,
            })
            .into_response()
        }
        Some(Fault::Internal) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
            "Injected fault: internal server error.",
        )
        .into_response(),
        Some(Fault::Unavailable) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            "Injected fault: service unavailable.",
        )
        .into_response(),
    }
}
