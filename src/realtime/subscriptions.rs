//! Who is subscribed to which room, and where each subscription stands: the hub's state, with no
//! I/O in it, so that every rule of gap-free delivery is tested here on its own.
//!
//! Every subscription `(socket, room)` has a cursor, `delivered`: the last seq the socket was
//! handed for that room. It is either **live** (each newly dispatched seq `delivered + 1` is
//! emitted to it at once) or **catching up** (a catch-up task reads the store after `delivered`
//! and live dispatch leaves it alone). Dispatch only ever emits the seq right after the cursor: an
//! older seq is skipped (no duplicate), a newer one, or an emit that is refused, turns the
//! subscription into catching up (no gap). A catch-up goes live only once its cursor has reached
//! what dispatch has seen of the room. Each catch-up carries a generation; a newer one supersedes
//! it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

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
    /// Bumped whenever a new catch-up takes over, so that a superseded one stops.
    generation: u64,
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
    by_socket: HashMap<K, HashSet<Room>>,
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
/// `generation` of that subscription.
pub(super) struct CatchUpStart<S> {
    /// The socket.
    pub socket: S,
    /// The room.
    pub room: Room,
    /// The subscription's generation the catch-up runs as.
    pub generation: u64,
    /// The last seq the socket has.
    pub cursor: u64,
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

    /// How many photo rooms `key` is subscribed to, and whether `room` is one of them.
    pub fn photo_rooms(&self, key: K, room: &Room) -> (usize, bool) {
        self.by_socket.get(&key).map_or((0, false), |rooms| {
            let photos = rooms.iter().filter(|r| matches!(r, Room::Photo(_))).count();
            (photos, rooms.contains(room))
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
            .or_insert_with(|| Subscription {
                socket: socket.clone(),
                mode: Mode::Live,
                delivered: dispatched,
                generation: 0,
            })
            .delivered
    }

    /// Subscribes `socket` to `room` as catching up from after `after` (a replay), superseding
    /// any catch-up it had. Returns the generation the new catch-up runs as.
    pub fn replay(&mut self, room: &Room, key: K, socket: &S, head: u64, after: u64) -> u64 {
        let sub = self
            .room(room, key, head)
            .subs
            .entry(key)
            .or_insert_with(|| Subscription {
                socket: socket.clone(),
                mode: Mode::CatchingUp,
                delivered: after,
                generation: 0,
            });
        sub.mode = Mode::CatchingUp;
        sub.delivered = after;
        sub.generation += 1;
        sub.generation
    }

    fn room(&mut self, room: &Room, key: K, head: u64) -> &mut RoomSubs<K, S> {
        self.by_socket.entry(key).or_default().insert(room.clone());
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
        if let Some(rooms) = self.by_socket.get_mut(&key) {
            rooms.remove(room);
        }
        self.remove_sub(key, room);
    }

    /// Forgets a socket and all its subscriptions.
    pub fn remove_socket(&mut self, key: K) {
        for room in self.by_socket.remove(&key).unwrap_or_default() {
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
        let Some(subs) = self.rooms.get_mut(room) else {
            return (0, catch_ups);
        };
        if seq <= subs.dispatched {
            return (0, catch_ups);
        }
        subs.dispatched = seq;
        let mut delivered = 0;
        for sub in subs.subs.values_mut() {
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
            sub.mode = Mode::CatchingUp;
            sub.generation += 1;
            catch_ups.push(CatchUpStart {
                socket: sub.socket.clone(),
                room: room.clone(),
                generation: sub.generation,
                cursor: sub.delivered,
            });
        }
        (delivered, catch_ups)
    }

    /// Whether `generation` is still the catch-up of `(key, room)`.
    pub fn is_current(&self, room: &Room, key: K, generation: u64) -> bool {
        self.rooms
            .get(room)
            .and_then(|subs| subs.subs.get(&key))
            .is_some_and(|sub| sub.generation == generation)
    }

    /// Switches a catch-up that has delivered up to `cursor` to live, if dispatch has not seen
    /// more of the room.
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
        subs.replay(&room(), 2, &2, 0, 0);
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

    /// A catch-up goes live only once it has reached what dispatch has seen, and a superseded
    /// catch-up cannot go live.
    #[test]
    fn catch_up_goes_live_when_caught_up() {
        let mut subs = Subs::default();
        subs.join_live(&room(), 9, &9, 10);
        let first = subs.replay(&room(), 1, &1, 10, 0);
        assert_eq!(dispatch(&mut subs, 11, &[]), (vec![9], vec![]));
        assert_eq!(subs.try_go_live(&room(), 1, first, 10), GoLive::Behind);
        let second = subs.replay(&room(), 1, &1, 11, 3);
        assert!(!subs.is_current(&room(), 1, first));
        assert_eq!(subs.try_go_live(&room(), 1, first, 11), GoLive::Gone);
        assert_eq!(subs.try_go_live(&room(), 1, second, 11), GoLive::Live);
        assert_eq!(dispatch(&mut subs, 12, &[]), (vec![1, 9], vec![]));
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
