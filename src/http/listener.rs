//! The listening socket: a deep accept queue for reconnect storms, and `TCP_NODELAY` on every
//! accepted connection so that small frames (handshakes, acks, single events) are not held back
//! by Nagle's algorithm waiting for the peer's delayed ACK.

use std::io;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Connections the kernel may hold completed but not yet accepted (capped by the system's
/// `net.core.somaxconn`). A deploy's reconnect storm brings thousands of handshakes at once; with
/// tokio's default of 1,024 the queue overflowed at about 1,000 handshakes in flight and clients
/// waited a second for their SYN to be retried (docs/benchmarks.md).
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds `addr` with a deep accept queue.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// The listener as axum serves it: every accepted connection gets `TCP_NODELAY`.
pub fn serving(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(|stream: &mut TcpStream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
        }
    })
}
