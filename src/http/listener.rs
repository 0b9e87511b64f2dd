//! The listening socket, with a deep accept queue for reconnect storms (each accepted connection
//! gets `TCP_NODELAY` where it is served: [`super::serve`]).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

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
