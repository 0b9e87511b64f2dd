//! The v4 heartbeat of a socket that starts on websocket, as a state for the socket's own task
//! to drive beside its writer (`transport::ws`), instead of a task of its own per socket.
//!
//! It keeps the heartbeat job's schedule ([`Socket::spawn_heartbeat`], which the polling
//! transport still uses): a ping at once, then one every `interval` counted from the first;
//! each ping must be answered within `timeout`, and the next ping waits for the answer.

use std::time::Duration;

use engineioxide_core::Packet;
use smallvec::smallvec;
use tokio::time::Instant;

use crate::{errors::Error, socket::Socket};

/// Where a socket's heartbeat stands. Its owner waits until [`Heartbeat::deadline`], then calls
/// [`Heartbeat::on_deadline`]; while [`Heartbeat::awaiting_pong`], it calls
/// [`Heartbeat::on_pong`] when the socket's `heartbeat` notify fires.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// When the next ping is due.
    next_ping: Instant,
    /// When the ping sent last must have been answered by, while it is not.
    pong_by: Option<Instant>,
}

impl Heartbeat {
    /// A heartbeat whose first ping is due now.
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            next_ping: Instant::now(),
            pong_by: None,
        }
    }

    /// When [`Heartbeat::on_deadline`] is to be called next.
    pub(crate) fn deadline(&self) -> Instant {
        self.pong_by.unwrap_or(self.next_ping)
    }

    /// Whether a ping waits for its pong.
    pub(crate) fn awaiting_pong(&self) -> bool {
        self.pong_by.is_some()
    }

    /// The pong came: the next ping is due at its time (at once if that has passed).
    pub(crate) fn on_pong(&mut self) {
        self.pong_by = None;
    }

    /// At [`Heartbeat::deadline`]: queues a ping to `socket` when one is due, or fails when the
    /// last ping went unanswered for `timeout` (or the ping finds the socket's queue full or
    /// closed, as in the heartbeat job).
    pub(crate) fn on_deadline<D>(&mut self, socket: &Socket<D>) -> Result<(), Error>
    where
        D: Default + Send + Sync + 'static,
    {
        if self.pong_by.is_some() {
            return Err(Error::HeartbeatTimeout);
        }
        socket
            .internal_tx
            .try_send(smallvec![Packet::Ping])
            .map_err(|_| Error::HeartbeatTimeout)?;
        self.pong_by = Some(Instant::now() + self.timeout);
        self.next_ping += self.interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use engineioxide_core::{ProtocolVersion, TransportType};

    use super::*;
    use crate::config::EngineIoConfig;

    const INTERVAL: Duration = Duration::from_millis(300);
    const TIMEOUT: Duration = Duration::from_millis(200);

    fn socket(max_buffer_size: usize) -> Socket<()> {
        let config = EngineIoConfig {
            max_buffer_size,
            ..EngineIoConfig::default()
        };
        Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &config,
            http::Request::<()>::default().into_parts().0,
            Box::new(|_, _| {}),
            false,
        )
    }

    #[tokio::test]
    async fn pings_at_once_then_every_interval_while_answered() {
        let socket = socket(8);
        let mut rx = socket.internal_rx.try_lock().unwrap();
        let mut heartbeat = Heartbeat::new(INTERVAL, TIMEOUT);
        let start = heartbeat.deadline();
        assert!(start <= Instant::now(), "the first ping is due at once");

        heartbeat.on_deadline(&socket).unwrap();
        assert_eq!(rx.buffered_rx.try_recv().unwrap()[..], [Packet::Ping]);
        assert!(heartbeat.awaiting_pong());
        let pong_by = heartbeat.deadline();
        assert!(pong_by >= start + TIMEOUT && pong_by < Instant::now() + TIMEOUT + INTERVAL);

        heartbeat.on_pong();
        assert!(!heartbeat.awaiting_pong());
        assert_eq!(
            heartbeat.deadline(),
            start + INTERVAL,
            "counted from the first ping"
        );
        heartbeat.on_deadline(&socket).unwrap();
        assert_eq!(rx.buffered_rx.try_recv().unwrap()[..], [Packet::Ping]);
    }

    #[tokio::test]
    async fn an_unanswered_ping_times_out() {
        let socket = socket(8);
        let mut heartbeat = Heartbeat::new(INTERVAL, TIMEOUT);
        heartbeat.on_deadline(&socket).unwrap();
        assert!(matches!(
            heartbeat.on_deadline(&socket),
            Err(Error::HeartbeatTimeout)
        ));
    }

    #[tokio::test]
    async fn a_ping_into_a_full_queue_times_out() {
        let socket = socket(1);
        socket.emit("queued").unwrap();
        let mut heartbeat = Heartbeat::new(INTERVAL, TIMEOUT);
        assert!(matches!(
            heartbeat.on_deadline(&socket),
            Err(Error::HeartbeatTimeout)
        ));
    }
}
