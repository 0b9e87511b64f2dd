//! The receiving end of a socket's outgoing packet queue, which keeps the count of the bytes
//! queued (see [`Socket::reserve`](crate::socket::Socket::reserve) and
//! [`EngineIoConfig::max_buffer_bytes`](crate::config::EngineIoConfig::max_buffer_bytes)).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use engineioxide_core::{Packet, PacketBuf};
use tokio::sync::mpsc::{Receiver, error::TryRecvError};

/// The bytes of message and binary data in `packets`: what a queued packet buffer counts
/// against the socket's byte bound. Control packets count nothing.
pub(crate) fn queued_bytes(packets: &PacketBuf) -> usize {
    packets
        .iter()
        .map(|packet| match packet {
            Packet::Message(msg) => msg.len(),
            Packet::Binary(bin) | Packet::BinaryV3(bin) => bin.len(),
            _ => 0,
        })
        .sum()
}

/// The receiving end of a socket's packet channel. Every packet buffer taken out of it is
/// subtracted from the count of queued bytes that the sending side added it to.
#[derive(Debug)]
pub(crate) struct QueueRx {
    rx: Receiver<PacketBuf>,
    bytes: Arc<AtomicUsize>,
}

impl QueueRx {
    /// Wraps `rx`, whose senders add each buffer's [`queued_bytes`] to `bytes` before sending it.
    pub(crate) fn new(rx: Receiver<PacketBuf>, bytes: Arc<AtomicUsize>) -> Self {
        Self { rx, bytes }
    }

    fn taken(&self, packets: PacketBuf) -> PacketBuf {
        self.bytes
            .fetch_sub(queued_bytes(&packets), Ordering::Relaxed);
        packets
    }

    /// Receives the next packet buffer, as [`Receiver::recv`].
    pub(crate) async fn recv(&mut self) -> Option<PacketBuf> {
        let packets = self.rx.recv().await?;
        Some(self.taken(packets))
    }

    /// Receives a packet buffer if one is queued, as [`Receiver::try_recv`].
    pub(crate) fn try_recv(&mut self) -> Result<PacketBuf, TryRecvError> {
        let packets = self.rx.try_recv()?;
        Ok(self.taken(packets))
    }

    /// Polls for the next packet buffer, as [`Receiver::poll_recv`].
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<PacketBuf>> {
        self.rx
            .poll_recv(cx)
            .map(|packets| packets.map(|packets| self.taken(packets)))
    }

    /// Closes the channel, as [`Receiver::close`].
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}
