//! Serving the router over HTTP/1.1 (with upgrades, for websockets) with read timeouts against
//! clients that send slowly on purpose (docs/protocol.md, "Limits"): the request headers must
//! arrive within the header timeout (an idle keep-alive connection is closed after it too), and
//! each part of a request body within the body timeout of the previous one (the body timeout
//! wraps the router: see [`crate::app`]). Responses are never timed: a Server-Sent Events stream
//! or a long poll lives as long as it needs.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{HeaderMap, HeaderValue, UPGRADE};
use axum::http::{Request, Uri};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::telemetry::ErrorChain;

/// How long to pause accepting after an accept error (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets each
/// connection finish its request in flight, and returns once all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Told to every connection at shutdown; `open` is held by each until it ends.
    let (stopping, stop_signal) = watch::channel(false);
    let (open_tx, open) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small frames (handshakes, acks, single events) must not wait for the
                    // peer's delayed ACK (Nagle): 40 ms per handshake without this.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    stream
                }
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(|request: hyper::Request<Incoming>| {
                detach_upgrade(request.map(Body::new))
            });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut stop_signal, open) = (stop_signal.clone(), open.clone());
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async { let _ = stop_signal.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::trace!(error = %ErrorChain(&e), "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    open_tx.closed().await;
}

/// An upgrade request (a websocket) with its URI and header values copied out of hyper's read
/// buffer, which they otherwise share: the upgraded connection keeps the request's head (the
/// Socket.IO session holds it), and with it the whole buffer, about 13 KB per websocket for its
/// lifetime. Other requests are passed as they are (their connection owns the buffer anyway).
fn detach_upgrade<B>(request: Request<B>) -> Request<B> {
    if !request.headers().contains_key(UPGRADE) {
        return request;
    }
    let (mut head, body) = request.into_parts();
    head.headers = owned_headers(&head.headers);
    // Parsing from a `&str` copies; a URI that parsed once parses again.
    if let Ok(uri) = head.uri.to_string().parse::<Uri>() {
        head.uri = uri;
    }
    Request::from_parts(head, body)
}

/// `headers` with every value in an allocation of its own (names are copied when parsed).
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}
