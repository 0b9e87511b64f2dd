//! The dispatcher's queue: committed events waiting to be handed to the live subscribers of their
//! rooms, taken in steps, the rooms with the fewest subscribers first.
//!
//! Handing an event to a room wakes the writer of each of its sockets, and a writer that has one
//! frame to send costs a system call of several microseconds: the events of one tick for 5,000
//! sockets keep the hub's core busy for tens of milliseconds. Had they all been handed out at
//! once, an event of another room committed meanwhile would wait behind every one of those writes.
//! So the dispatcher hands out a step of about [`STEP`] deliveries, lets the writers it woke run,
//! and then takes the next step from whatever has been committed by then. Within a room events
//! keep their seq order; across rooms there is none (docs/protocol.md, "Sequence numbers"), so
//! each step takes the rooms with the fewest subscribers first: their events cost the least, so
//! the mean wait is the shortest, and a room's own pending events all go in one step (a socket's
//! writer then sends them in one write, as before the steps). A room passed over for
//! [`OVERDUE_STEPS`] steps goes first in the next, so small rooms that never stop cannot keep a
//! big one waiting.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

use crate::domain::Room;

/// Deliveries (events times subscribers) a step hands out before the dispatcher lets the writers
/// run: a few milliseconds of one-frame writes. A step takes whole rooms, so it may take more.
pub(super) const STEP: usize = 256;

/// Steps a room's events may wait before the room goes ahead of smaller ones.
pub(super) const OVERDUE_STEPS: u64 = 8;

/// Events (one per room an event is in) waiting, past which the dispatcher hands out everything
/// at once instead of in steps: when commits outpace delivery (ingest saturating the hub's
/// core), waiting between steps only lets ingest run further ahead while the queue grows and
/// every event waits longer; handed out at once, the sockets' bounded queues turn the excess
/// into catch-ups from the store, as without the steps.
pub(super) const BACKLOG: usize = 1024;

/// Events waiting for dispatch, per room in seq order; `T` is what the dispatcher needs to deliver
/// one (the committed event and its seq in that room).
pub(super) struct Pending<T> {
    /// Room -> its events, and the number of the step after which its first one was queued.
    rooms: HashMap<Room, (VecDeque<T>, u64)>,
    /// Events queued in all rooms.
    events: usize,
    /// Steps taken so far.
    steps: u64,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
            events: 0,
            steps: 0,
        }
    }
}

impl<T> Pending<T> {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Events queued in all rooms.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Queues `item`, the next event of `room` (after the ones already queued for it).
    pub fn push(&mut self, room: &Room, item: T) {
        self.events += 1;
        match self.rooms.get_mut(room) {
            Some((queue, _)) => queue.push_back(item),
            None => {
                self.rooms
                    .insert(room.clone(), (VecDeque::from([item]), self.steps));
            }
        }
    }

    /// Takes the next step: whole rooms with every event queued for them, the overdue rooms
    /// (waiting for [`OVERDUE_STEPS`] steps) first, oldest first, then the rooms with the fewest
    /// `subscribers`, until their deliveries (events times subscribers) reach `budget` (at least
    /// one room, when any waits).
    pub fn step(
        &mut self,
        budget: usize,
        subscribers: impl Fn(&Room) -> usize,
    ) -> Vec<(Room, VecDeque<T>)> {
        let steps = self.steps;
        let mut order: Vec<(bool, u64, usize, Room)> = self
            .rooms
            .iter()
            .map(|(room, (_, since))| {
                let overdue = steps - since >= OVERDUE_STEPS;
                let age_rank = if overdue { *since } else { 0 };
                (!overdue, age_rank, subscribers(room), room.clone())
            })
            .collect();
        order.sort_unstable_by_key(|(waiting, age_rank, size, _)| (*waiting, *age_rank, *size));
        self.steps += 1;
        let mut taken = Vec::new();
        let mut deliveries = 0usize;
        for (_, _, size, room) in order {
            if deliveries >= budget && !taken.is_empty() {
                break;
            }
            if let Some((queue, _)) = self.rooms.remove(&room) {
                self.events -= queue.len();
                deliveries = deliveries.saturating_add(size.saturating_mul(queue.len()));
                taken.push((room, queue));
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhotoId;

    fn photo(name: &str) -> Room {
        Room::Photo(PhotoId::parse(name).expect("photo id"))
    }

    /// Rooms as `(name, seqs)` in the order a step took them.
    fn names(step: Vec<(Room, VecDeque<u64>)>) -> Vec<(String, Vec<u64>)> {
        step.into_iter()
            .map(|(room, queue)| (room.to_string(), queue.into_iter().collect()))
            .collect()
    }

    /// A small room's event goes before a big room's committed earlier, and each room's events
    /// stay in seq order, all in one step.
    #[test]
    fn fewest_subscribers_first_each_room_in_order() {
        let mut pending = Pending::default();
        let (big, small) = (photo("big"), photo("small"));
        pending.push(&big, 1);
        pending.push(&big, 2);
        pending.push(&small, 7);
        pending.push(&big, 3);
        let size = |room: &Room| if *room == big { 100 } else { 10 };
        assert_eq!(pending.events(), 4);
        let step = pending.step(1_000, size);
        assert_eq!(
            names(step),
            vec![
                ("photo:small".to_owned(), vec![7]),
                ("photo:big".to_owned(), vec![1, 2, 3]),
            ]
        );
        assert!(pending.is_empty());
        assert_eq!(pending.events(), 0);
    }

    /// A step ends once its deliveries reach the budget; the rest waits for the next, where
    /// events committed meanwhile to a smaller room go first.
    #[test]
    fn a_step_stops_at_the_budget() {
        let mut pending = Pending::default();
        let rooms: Vec<Room> = (0..5).map(|i| photo(&format!("big{i}"))).collect();
        for room in &rooms {
            pending.push(room, 1);
        }
        let small = photo("small");
        let size = |room: &Room| if *room == small { 10 } else { 100 };
        assert_eq!(
            pending.step(250, size).len(),
            3,
            "100 + 100 + 100 reach 250"
        );
        pending.push(&small, 1);
        let next = names(pending.step(250, size));
        assert_eq!(next.len(), 3);
        assert_eq!(next[0], ("photo:small".to_owned(), vec![1]));
        assert!(pending.is_empty());
    }

    /// Small rooms that fill every step do not keep a big room waiting past the overdue steps.
    #[test]
    fn a_big_room_waits_no_longer_than_the_overdue_steps() {
        let mut pending = Pending::default();
        let big = photo("big");
        pending.push(&big, 0);
        let size = |room: &Room| if *room == big { 1_000 } else { 1 };
        let mut waited = 0;
        loop {
            for i in 0..300 {
                pending.push(&photo(&format!("small{waited}-{i}")), waited);
            }
            let step = names(pending.step(256, size));
            if step.iter().any(|(name, _)| name == "photo:big") {
                break;
            }
            waited += 1;
            assert!(waited <= OVERDUE_STEPS, "the big room still waits");
        }
        assert_eq!(waited, OVERDUE_STEPS);
    }

    /// A room bigger than the budget still goes, alone, and a room nobody is in costs nothing.
    #[test]
    fn at_least_one_room_per_step() {
        let mut pending = Pending::default();
        let (huge, empty, other) = (photo("huge"), photo("empty"), photo("other"));
        pending.push(&huge, 1);
        pending.push(&other, 1);
        pending.push(&empty, 1);
        let size = |room: &Room| match room.to_string().as_str() {
            "photo:huge" => 5_000,
            "photo:other" => 300,
            _ => 0,
        };
        let first = names(pending.step(256, size));
        assert_eq!(first.len(), 2, "{first:?}");
        assert_eq!(
            (first[0].0.as_str(), first[1].0.as_str()),
            ("photo:empty", "photo:other")
        );
        assert_eq!(names(pending.step(256, size))[0].0, "photo:huge");
        assert!(pending.is_empty());
        assert!(pending.step(256, size).is_empty());
    }
}
