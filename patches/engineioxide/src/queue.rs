//! A socket's outgoing packet queue: bounded in packets and counted in bytes (see
//! [`Socket::reserve`](crate::socket::Socket::reserve) and
//! [`EngineIoConfig::max_buffer_bytes`](crate::config::EngineIoConfig::max_buffer_bytes)), and
//! allocating nothing until a packet is queued (an idle socket holds no buffer; a drained one
//! gives its buffer back).
//!
//! It replaces a `tokio::sync::mpsc` channel, whose first block of 32 slots is allocated when the
//! channel is made, with the same outcomes: `Full` at capacity (queued plus reserved packets),
//! `Closed` once the receiving end is closed, and a closed queue still hands out what it holds.
//! It also has one place for volatile packets (the latest one sent, handed out after the queued
//! ones), instead of a `tokio::sync::watch` channel per socket.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
};

use engineioxide_core::{Packet, PacketBuf};
use tokio::sync::{
    Notify,
    mpsc::error::{TryRecvError, TrySendError},
};

/// A drained buffer larger than this many packet buffers is freed rather than kept.
const KEEP_CAPACITY: usize = 8;

/// The bytes of message and binary data in `packets`: what a queued packet buffer counts
/// against the socket's byte bound. Control packets count nothing.
pub(crate) fn queued_bytes(packets: &PacketBuf) -> usize {
    packets
        .iter()
        .map(|packet| match packet {
            Packet::Message(msg) => msg.len(),
            Packet::MessageFramed(msg) => msg.len().saturating_sub(1),
            Packet::Binary(bin) | Packet::BinaryV3(bin) => bin.len(),
            _ => 0,
        })
        .sum()
}

/// What the queue's lock guards.
#[derive(Debug, Default)]
struct State {
    packets: VecDeque<PacketBuf>,
    /// Places reserved by [`Permit`]s not yet used.
    reserved: usize,
    closed: bool,
    rx_waker: Option<Waker>,
    /// The latest volatile packet buffer not yet taken (see [`QueueTx::send_volatile`]).
    volatile: Option<PacketBuf>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    capacity: usize,
    bytes: AtomicUsize,
    /// Woken when a place frees up (for [`QueueTx::send`]).
    space: Notify,
    /// Woken when the queue closes (for [`QueueTx::closed`]).
    closing: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code, so a poisoned lock still guards a valid state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `packets` in a place already counted (reserved or checked free).
    fn push(&self, mut state: MutexGuard<'_, State>, packets: PacketBuf) {
        self.bytes
            .fetch_add(queued_bytes(&packets), Ordering::Relaxed);
        state.packets.push_back(packets);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The sending end of a socket's packet queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueTx {
    shared: Arc<Shared>,
}

/// The receiving end of a socket's packet queue.
#[derive(Debug)]
pub(crate) struct QueueRx {
    shared: Arc<Shared>,
}

/// A place reserved in the queue, used by [`QueuePermit::send`] or given back when dropped.
pub(crate) struct QueuePermit<'a> {
    shared: &'a Shared,
}

/// A queue of at most `capacity` packet buffers (at least one).
pub(crate) fn queue(capacity: usize) -> (QueueTx, QueueRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        capacity: capacity.max(1),
        bytes: AtomicUsize::new(0),
        space: Notify::new(),
        closing: Notify::new(),
    });
    (
        QueueTx {
            shared: shared.clone(),
        },
        QueueRx { shared },
    )
}

impl QueueTx {
    /// Queues `packets` if there is a place, as `mpsc::Sender::try_send`.
    pub(crate) fn try_send(&self, packets: PacketBuf) -> Result<(), TrySendError<PacketBuf>> {
        let state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(packets));
        }
        if state.packets.len() + state.reserved >= self.shared.capacity {
            return Err(TrySendError::Full(packets));
        }
        self.shared.push(state, packets);
        Ok(())
    }

    /// Queues `packets`, waiting for a place, as `mpsc::Sender::send`.
    pub(crate) async fn send(&self, packets: PacketBuf) -> Result<(), PacketBuf> {
        let mut packets = packets;
        loop {
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.try_send(packets) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => packets = back,
            }
            tokio::select! {
                () = space => {}
                () = self.closed() => {}
            }
        }
    }

    /// Reserves a place, as `mpsc::Sender::try_reserve`.
    pub(crate) fn try_reserve(&self) -> Result<QueuePermit<'_>, TrySendError<()>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(()));
        }
        if state.packets.len() + state.reserved >= self.shared.capacity {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(QueuePermit {
            shared: &self.shared,
        })
    }

    /// Whether the receiving end was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Puts `packets` in the queue's volatile place, replacing the volatile packets not yet
    /// taken: they are handed out after the queued packet buffers, count against neither bound,
    /// and are dropped when another volatile send comes first. `false` once the queue is closed.
    pub(crate) fn send_volatile(&self, packets: PacketBuf) -> bool {
        let mut state = self.shared.lock();
        if state.closed {
            return false;
        }
        state.volatile = Some(packets);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Waits until the receiving end is closed.
    pub(crate) async fn closed(&self) {
        let closing = self.shared.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.is_closed() {
            return;
        }
        closing.await;
    }

    /// The bytes of message and binary data queued and not yet taken by the receiver.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
    }
}

impl QueuePermit<'_> {
    /// Queues `packets` in the reserved place.
    pub(crate) fn send(self, packets: PacketBuf) {
        let shared = self.shared;
        // The place is used, not given back: no `Drop`.
        std::mem::forget(self);
        let mut state = shared.lock();
        state.reserved -= 1;
        shared.push(state, packets);
    }
}

impl Drop for QueuePermit<'_> {
    fn drop(&mut self) {
        self.shared.lock().reserved -= 1;
        self.shared.space.notify_one();
    }
}

impl QueueRx {
    /// Takes the next packet buffer if one is queued; records `waker` to be woken by the next
    /// push otherwise.
    fn take(&self, waker: Option<&Waker>) -> Result<PacketBuf, TryRecvError> {
        let mut state = self.shared.lock();
        let Some(packets) = state.packets.pop_front() else {
            if let Some(volatile) = state.volatile.take() {
                return Ok(volatile);
            }
            if state.closed {
                return Err(TryRecvError::Disconnected);
            }
            if let Some(waker) = waker {
                state.rx_waker = Some(waker.clone());
            }
            return Err(TryRecvError::Empty);
        };
        if state.packets.is_empty() && state.packets.capacity() > KEEP_CAPACITY {
            state.packets = VecDeque::new();
        }
        drop(state);
        self.shared
            .bytes
            .fetch_sub(queued_bytes(&packets), Ordering::Relaxed);
        self.shared.space.notify_one();
        Ok(packets)
    }

    /// Receives the next packet buffer, as `mpsc::Receiver::recv`.
    pub(crate) async fn recv(&mut self) -> Option<PacketBuf> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives a packet buffer if one is queued, as `mpsc::Receiver::try_recv`.
    pub(crate) fn try_recv(&mut self) -> Result<PacketBuf, TryRecvError> {
        self.take(None)
    }

    /// Polls for the next packet buffer, as `mpsc::Receiver::poll_recv`.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<PacketBuf>> {
        match self.take(Some(cx.waker())) {
            Ok(packets) => Poll::Ready(Some(packets)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Closes the queue, as `mpsc::Receiver::close`: senders get `Closed` from now on, and what
    /// is queued can still be received.
    pub(crate) fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.closing.notify_waiters();
        self.shared.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use smallvec::smallvec;

    use super::*;

    fn message(text: &'static str) -> PacketBuf {
        smallvec![Packet::Message(text.into())]
    }

    #[tokio::test]
    async fn full_at_capacity_counting_reserved_places() {
        let (tx, mut rx) = queue(2);
        tx.try_send(message("a")).unwrap();
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(
            tx.try_send(message("b")),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        drop(permit);
        tx.try_reserve().unwrap().send(message("bc"));
        assert_eq!(tx.queued_bytes(), 3);
        assert_eq!(rx.recv().await.unwrap(), message("a"));
        assert_eq!(rx.try_recv().unwrap(), message("bc"));
        assert_eq!(tx.queued_bytes(), 0);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn a_closed_queue_hands_out_what_it_holds_then_ends() {
        let (tx, mut rx) = queue(4);
        tx.try_send(message("a")).unwrap();
        let closed = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        rx.close();
        closed.await.unwrap();
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send(message("b")),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        assert_eq!(rx.recv().await.unwrap(), message("a"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_and_a_waiting_sender_are_woken() {
        let (tx, mut rx) = queue(1);
        let received = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.try_send(message("a")).unwrap();
        tx.send(message("b")).await.unwrap();
        let (first, second) = received.await.unwrap();
        assert_eq!(first.unwrap(), message("a"));
        assert_eq!(second.unwrap(), message("b"));
    }

    #[tokio::test]
    async fn the_latest_volatile_packets_come_after_the_queued_ones() {
        let (tx, mut rx) = queue(1);
        tx.try_send(message("a")).unwrap();
        assert!(tx.send_volatile(message("lost")));
        assert!(tx.send_volatile(message("v")));
        assert_eq!(tx.queued_bytes(), 1, "volatile packets count nothing");
        assert!(
            matches!(tx.try_send(message("b")), Err(TrySendError::Full(_))),
            "nor take a place"
        );
        assert_eq!(rx.recv().await.unwrap(), message("a"));
        assert_eq!(rx.recv().await.unwrap(), message("v"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));

        let received = tokio::spawn(async move {
            let volatile = rx.recv().await;
            rx.close();
            volatile
        });
        tokio::task::yield_now().await;
        assert!(tx.send_volatile(message("w")));
        assert_eq!(
            received.await.unwrap().unwrap(),
            message("w"),
            "a waiting receiver is woken"
        );
        assert!(!tx.send_volatile(message("x")), "refused once closed");
    }

    #[tokio::test]
    async fn a_drained_queue_gives_its_buffer_back() {
        let (tx, mut rx) = queue(64);
        for _ in 0..32 {
            tx.try_send(message("a")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.lock().packets.capacity(), 0);
    }
}
