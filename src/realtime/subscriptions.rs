//! Who is subscribed to which room, and where each subscription stands: the hub's state, with no
//! I/O in it, so that every rule of gap-free delivery is tested here on its own.
//!
//! Every subscription `(socket, room)` has a cursor, `delivered`: the last seq the socket was
//! handed for that room. It is either **live** (each newly dispatched seq `delivered + 1` is
//! emitted to it at once) or **catching up** (a catch-up task reads the store after `delivered`
//! and live dispatch leaves it alone). Dispatch only ever emits the seq right after the cursor: an
//! older seq is skipped (no duplicate), a newer one, or an emit that is refused, turns the
//! subscription into catching up (no gap). A catch-up goes live only once its cursor has reached
//! what dispatch has seen of the room. Each catch-up carries a generation and a stop token; a
//! newer one supersedes it (its token is cancelled, so it stops within one event), and so does
//! unsubscribing or leaving. Whoever waits for a subscription to go live (a resume) waits for the
//! subscription, not for one catch-up: a newer catch-up that supersedes the first tells it.

use std::hash::Hash;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::Room;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    CatchingUp,
}

struct Subscription<S> {
    socket: S,
    mode: Mode,
    delivered: u64,
    /// Bumped whenever a new catch-up takes over, so that a superseded one cannot go live.
    generation: u64,
    /// Cancelled when the current catch-up is superseded or the subscription ends.
    stop: CancellationToken,
    /// Told the seq at which the subscription goes live.
    waiters: Vec<oneshot::Sender<u64>>,
}

impl<S> Subscription<S> {
    fn new(socket: S, mode: Mode, delivered: u64) -> Self {
        Self {
            socket,
            mode,
            delivered,
            generation: 0,
            stop: CancellationToken::new(),
            waiters: Vec::new(),
        }
    }

    /// Supersedes the current catch-up (if any) with a new one; returns its generation and token.
    fn restart(&mut self) -> (u64, CancellationToken) {
        self.stop.cancel();
        self.stop = CancellationToken::new();
        self.mode = Mode::CatchingUp;
        self.generation += 1;
        (self.generation, self.stop.clone())
    }
}

impl<S> Drop for Subscription<S> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the subscriptions of one socket share.
struct SocketSubs {
    rooms: HashSet<Room>,
    /// One catch-up of this socket runs at a time; the others wait for this permit.
    turn: Arc<Semaphore>,
}

impl Default for SocketSubs {
    fn default() -> Self {
        Self {
            rooms: HashSet::new(),
            turn: Arc::new(Semaphore::new(1)),
        }
    }
}

struct RoomSubs<K, S> {
    /// The highest seq of the room that dispatch has seen (or the head when the room was first
    /// subscribed).
    dispatched: u64,
    subs: HashMap<K, Subscription<S>>,
}

/// The subscriptions of every socket, keyed by socket id `K`, holding a socket handle `S`.
pub(super) struct Subscriptions<K, S> {
    rooms: HashMap<Room, RoomSubs<K, S>>,
    by_socket: HashMap<K, SocketSubs>,
}

impl<K, S> Default for Subscriptions<K, S> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
            by_socket: HashMap::new(),
        }
    }
}

/// A catch-up the caller must start: replay `room` to `socket` from after `cursor`, as
/// `generation` of that subscription, until `stop` is cancelled.
pub(super) struct CatchUpStart<S> {
    /// The socket.
    pub socket: S,
    /// The room.
    pub room: Room,
    /// The subscription's generation the catch-up runs as.
    pub generation: u64,
    /// The last seq the socket has.
    pub cursor: u64,
    /// Cancelled once the catch-up is superseded or its subscription ends.
    pub stop: CancellationToken,
    /// The socket's turn: one catch-up per socket runs at a time.
    pub turn: Arc<Semaphore>,
}

/// What an emit to a live socket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Emit {
    /// Queued for the socket.
    Sent,
    /// The socket is closed (its disconnect removes it).
    Closed,
    /// Not queued (its queue is full): it catches up from the store.
    Refused,
}

/// Whether a catch-up could hand its subscription over to live dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoLive {
    /// It is live now.
    Live,
    /// Dispatch has seen more of the room than the catch-up delivered: read on.
    Behind,
    /// Unsubscribed, or superseded by a newer catch-up.
    Gone,
}

impl<K: Copy + Eq + Hash, S: Clone> Subscriptions<K, S> {
    /// Sockets known and rooms with at least one subscriber.
    pub fn stats(&self) -> (usize, usize) {
        (self.by_socket.len(), self.rooms.len())
    }

    /// How many sockets are subscribed to `room`, live or catching up.
    pub fn subscribers(&self, room: &Room) -> usize {
        self.rooms.get(room).map_or(0, |subs| subs.subs.len())
    }

    /// How many photo rooms `key` is subscribed to, and whether `room` is one of them.
    pub fn photo_rooms(&self, key: K, room: &Room) -> (usize, bool) {
        self.by_socket.get(&key).map_or((0, false), |socket| {
            let photos = socket
                .rooms
                .iter()
                .filter(|r| matches!(r, Room::Photo(_)))
                .count();
            (photos, socket.rooms.contains(room))
        })
    }

    /// Records a connected socket (it may have no room yet).
    pub fn add_socket(&mut self, key: K) {
        self.by_socket.entry(key).or_default();
    }

    /// Subscribes `socket` live to `room` at what dispatch has seen of it (`head` for a room
    /// nobody was subscribed to). An existing subscription stays as it is. Returns the seq live
    /// delivery continues after.
    pub fn join_live(&mut self, room: &Room, key: K, socket: &S, head: u64) -> u64 {
        let subs = self.room(room, key, head);
        let dispatched = subs.dispatched;
        subs.subs
            .entry(key)
            .or_insert_with(|| Subscription::new(socket.clone(), Mode::Live, dispatched))
            .delivered
    }

    /// Subscribes `socket` to `room` as catching up from after `after` (a replay), superseding
    /// any catch-up it had; `waiter`, if given, is told the seq at which the subscription goes
    /// live. Returns the catch-up to start.
    pub fn replay(
        &mut self,
        room: &Room,
        key: K,
        socket: &S,
        head: u64,
        after: u64,
        waiter: Option<oneshot::Sender<u64>>,
    ) -> CatchUpStart<S> {
        let turn = self.turn(key);
        let sub = self
            .room(room, key, head)
            .subs
            .entry(key)
            .or_insert_with(|| Subscription::new(socket.clone(), Mode::CatchingUp, after));
        let (generation, stop) = sub.restart();
        sub.delivered = after;
        sub.waiters.extend(waiter);
        CatchUpStart {
            socket: sub.socket.clone(),
            room: room.clone(),
            generation,
            cursor: after,
            stop,
            turn,
        }
    }

    fn turn(&mut self, key: K) -> Arc<Semaphore> {
        Arc::clone(&self.by_socket.entry(key).or_default().turn)
    }

    fn room(&mut self, room: &Room, key: K, head: u64) -> &mut RoomSubs<K, S> {
        self.by_socket
            .entry(key)
            .or_default()
            .rooms
            .insert(room.clone());
        self.rooms.entry(room.clone()).or_insert_with(|| RoomSubs {
            dispatched: head,
            subs: HashMap::new(),
        })
    }

    /// The sockets subscribed to `room`, whatever their mode.
    pub fn sockets_in(&self, room: &Room) -> Vec<S> {
        self.rooms
            .get(room)
            .map(|subs| subs.subs.values().map(|sub| sub.socket.clone()).collect())
            .unwrap_or_default()
    }

    /// Unsubscribes a socket from one room.
    pub fn unsubscribe(&mut self, key: K, room: &Room) {
        if let Some(socket) = self.by_socket.get_mut(&key) {
            socket.rooms.remove(room);
        }
        self.remove_sub(key, room);
    }

    /// Forgets a socket and all its subscriptions (their catch-ups stop).
    pub fn remove_socket(&mut self, key: K) {
        let rooms = self
            .by_socket
            .remove(&key)
            .map(|socket| socket.rooms)
            .unwrap_or_default();
        for room in rooms {
            self.remove_sub(key, &room);
        }
    }

    fn remove_sub(&mut self, key: K, room: &Room) {
        if let Some(subs) = self.rooms.get_mut(room) {
            subs.subs.remove(&key);
            if subs.subs.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Hands a newly committed `seq` of `room` to its live subscribers through `emit`; a seq
    /// dispatch has already seen is ignored. Returns how many sockets it was queued for, and the
    /// catch-ups to start for those that could not take it (a gap, or a refused emit).
    pub fn dispatch(
        &mut self,
        room: &Room,
        seq: u64,
        mut emit: impl FnMut(&S) -> Emit,
    ) -> (u64, Vec<CatchUpStart<S>>) {
        let mut catch_ups = Vec::new();
        let by_socket = &self.by_socket;
        let Some(subs) = self.rooms.get_mut(room) else {
            return (0, catch_ups);
        };
        if seq <= subs.dispatched {
            return (0, catch_ups);
        }
        subs.dispatched = seq;
        let mut delivered = 0;
        for (key, sub) in subs.subs.iter_mut() {
            if sub.mode != Mode::Live || seq <= sub.delivered {
                continue;
            }
            if seq == sub.delivered + 1 {
                match emit(&sub.socket) {
                    Emit::Sent => {
                        sub.delivered = seq;
                        delivered += 1;
                        continue;
                    }
                    Emit::Closed => continue,
                    Emit::Refused => {}
                }
            }
            let Some(turn) = by_socket.get(key).map(|socket| Arc::clone(&socket.turn)) else {
                continue;
            };
            let (generation, stop) = sub.restart();
            catch_ups.push(CatchUpStart {
                socket: sub.socket.clone(),
                room: room.clone(),
                generation,
                cursor: sub.delivered,
                stop,
                turn,
            });
        }
        (delivered, catch_ups)
    }

    /// Switches a catch-up that has delivered up to `cursor` to live, if dispatch has not seen
    /// more of the room, and tells the subscription's waiters.
    pub fn try_go_live(&mut self, room: &Room, key: K, generation: u64, cursor: u64) -> GoLive {
        let Some(subs) = self.rooms.get_mut(room) else {
            return GoLive::Gone;
        };
        let dispatched = subs.dispatched;
        let Some(sub) = subs.subs.get_mut(&key) else {
            return GoLive::Gone;
        };
        if sub.generation != generation {
            return GoLive::Gone;
        }
        if cursor < dispatched {
            return GoLive::Behind;
        }
        sub.mode = Mode::Live;
        sub.delivered = cursor;
        for waiter in sub.waiters.drain(..) {
            let _ = waiter.send(cursor);
        }
        GoLive::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhotoId;

    type Subs = Subscriptions<u32, u32>;

    fn room() -> Room {
        Room::Photo(PhotoId::parse("p1").expect("photo id"))
    }

    /// Dispatches `seq` and returns which sockets got it and which must catch up (here a
    /// socket handle is its id).
    fn dispatch(subs: &mut Subs, seq: u64, refuse: &[u32]) -> (Vec<u32>, Vec<(u32, u64)>) {
        let mut got = Vec::new();
        let (_, catch_ups) = subs.dispatch(&room(), seq, |s| {
            if refuse.contains(s) {
                Emit::Refused
            } else {
                got.push(*s);
                Emit::Sent
            }
        });
        got.sort();
        (
            got,
            catch_ups.iter().map(|c| (c.socket, c.cursor)).collect(),
        )
    }

    /// The sockets of a room are those subscribed to it, live or catching up, until they leave.
    #[test]
    fn sockets_in_a_room() {
        let mut subs = Subs::default();
        assert!(subs.sockets_in(&room()).is_empty());
        subs.join_live(&room(), 1, &1, 0);
        subs.replay(&room(), 2, &2, 0, 0, None);
        subs.join_live(&Room::Global, 3, &3, 0);
        let mut sockets = subs.sockets_in(&room());
        sockets.sort();
        assert_eq!(sockets, vec![1, 2]);
        subs.remove_socket(1);
        assert_eq!(subs.sockets_in(&room()), vec![2]);
    }

    /// A live socket gets each next seq once; old seqs are not sent again.
    #[test]
    fn live_gets_each_seq_once() {
        let mut subs = Subs::default();
        assert_eq!(subs.join_live(&room(), 1, &1, 5), 5);
        assert_eq!(dispatch(&mut subs, 6, &[]), (vec![1], vec![]));
        assert_eq!(dispatch(&mut subs, 6, &[]), (vec![], vec![]));
        assert_eq!(dispatch(&mut subs, 5, &[]), (vec![], vec![]));
        assert_eq!(dispatch(&mut subs, 7, &[]), (vec![1], vec![]));
    }

    /// A gap in dispatched seqs turns a live socket into catching up from its cursor.
    #[test]
    fn gap_starts_a_catch_up() {
        let mut subs = Subs::default();
        subs.join_live(&room(), 1, &1, 0);
        assert_eq!(dispatch(&mut subs, 1, &[]), (vec![1], vec![]));
        assert_eq!(dispatch(&mut subs, 3, &[]), (vec![], vec![(1, 1)]));
        // Catching up: live dispatch leaves it alone.
        assert_eq!(dispatch(&mut subs, 4, &[]), (vec![], vec![]));
    }

    /// A refused emit (full queue) starts a catch-up; the others still get the event.
    #[test]
    fn refused_emit_starts_a_catch_up() {
        let mut subs = Subs::default();
        subs.join_live(&room(), 1, &1, 0);
        subs.join_live(&room(), 2, &2, 0);
        assert_eq!(dispatch(&mut subs, 1, &[2]), (vec![1], vec![(2, 0)]));
    }

    /// A catch-up goes live only once it has reached what dispatch has seen; a superseded
    /// catch-up is stopped and cannot go live, and whoever waited for the subscription to go live
    /// is told by the catch-up that superseded it.
    #[test]
    fn catch_up_goes_live_when_caught_up() {
        let mut subs = Subs::default();
        subs.join_live(&room(), 9, &9, 10);
        let (told, mut live_at) = oneshot::channel();
        let first = subs.replay(&room(), 1, &1, 10, 0, Some(told));
        assert_eq!(dispatch(&mut subs, 11, &[]), (vec![9], vec![]));
        assert_eq!(
            subs.try_go_live(&room(), 1, first.generation, 10),
            GoLive::Behind
        );
        let second = subs.replay(&room(), 1, &1, 11, 3, None);
        assert!(first.stop.is_cancelled());
        assert!(!second.stop.is_cancelled());
        assert!(
            Arc::ptr_eq(&first.turn, &second.turn),
            "one turn per socket"
        );
        assert_eq!(
            subs.try_go_live(&room(), 1, first.generation, 11),
            GoLive::Gone
        );
        assert!(live_at.try_recv().is_err(), "not live yet");
        assert_eq!(
            subs.try_go_live(&room(), 1, second.generation, 11),
            GoLive::Live
        );
        assert_eq!(live_at.try_recv(), Ok(11));
        assert_eq!(dispatch(&mut subs, 12, &[]), (vec![1, 9], vec![]));
    }

    /// Unsubscribing or leaving stops the subscription's catch-up and drops its waiters.
    #[test]
    fn leaving_stops_the_catch_up() {
        let mut subs = Subs::default();
        let (told, mut live_at) = oneshot::channel();
        let replay = subs.replay(&room(), 1, &1, 5, 0, Some(told));
        subs.unsubscribe(1, &room());
        assert!(replay.stop.is_cancelled());
        assert_eq!(
            live_at.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        let replay = subs.replay(&Room::Global, 1, &1, 5, 0, None);
        subs.remove_socket(1);
        assert!(replay.stop.is_cancelled());
    }

    /// Removing a socket forgets its rooms; an emptied room is dropped.
    #[test]
    fn remove_socket_forgets_everything() {
        let mut subs = Subs::default();
        subs.add_socket(1);
        subs.join_live(&room(), 1, &1, 0);
        assert_eq!(subs.stats(), (1, 1));
        subs.remove_socket(1);
        assert_eq!(subs.stats(), (0, 0));
        assert_eq!(dispatch(&mut subs, 1, &[]), (vec![], vec![]));
    }

    /// Unsubscribing one room keeps the socket known.
    #[test]
    fn unsubscribe_keeps_the_socket() {
        let mut subs = Subs::default();
        subs.join_live(&room(), 1, &1, 0);
        subs.unsubscribe(1, &room());
        assert_eq!(subs.stats(), (1, 0));
        assert_eq!(subs.try_go_live(&room(), 1, 0, 0), GoLive::Gone);
    }
}
