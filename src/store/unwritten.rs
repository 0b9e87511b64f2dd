//! Event blocks that are durable but not in the tree yet: the small blocks of flushed group
//! commits, which the committer wrote packed into its commit records and the writer has not yet
//! copied under their own keys (see `commit` and `derived`).
//!
//! Every read of a room consults these before the tree. A block leaves this map only after the
//! writer has put it in the tree and removed its commit record, so a reader that looks here first
//! and in the tree second finds each durable event in at least one of the two (and drops the
//! copies it finds in both), and retention, which leaves alone tree blocks holding a seq still
//! here, never removes a block that open might have to write again.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::HashMap;

use super::keys;
use super::records::StoredEvent;
use super::tree::Corruption;

/// One room's block of one group commit: the block record's value, as the tree will hold it.
#[derive(Debug, Clone)]
pub(super) struct UnwrittenBlock {
    /// Its first seq.
    pub first: u64,
    /// Its last seq (its key in the tree).
    pub last: u64,
    /// The block record's value.
    pub value: Arc<[u8]>,
}

impl UnwrittenBlock {
    /// Its events, or none (reported to `corruption`) when it does not decode.
    pub fn events(&self, room: &str, corruption: &Corruption) -> Vec<StoredEvent> {
        super::tree::readable_events(&keys::event(room, self.last), &self.value, corruption)
    }
}

/// The unwritten blocks of every room, each room's in seq order.
#[derive(Default)]
pub(super) struct Unwritten(RwLock<HashMap<String, VecDeque<UnwrittenBlock>>>);

impl Unwritten {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, VecDeque<UnwrittenBlock>>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, VecDeque<UnwrittenBlock>>> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the blocks of a flushed group readable (each room's after those it already has).
    pub fn add(&self, blocks: &[(String, UnwrittenBlock)]) {
        if blocks.is_empty() {
            return;
        }
        let mut rooms = self.write();
        for (room, block) in blocks {
            rooms
                .entry(room.clone())
                .or_default()
                .push_back(block.clone());
        }
    }

    /// Forgets the blocks now in the tree: for each `(room, first, last)` written, the room's
    /// blocks within those seqs (a block of a turn whose write failed stays, even when a later
    /// turn wrote the room's later seqs).
    pub fn settle(&self, written: &[(String, u64, u64)]) {
        let mut rooms = self.write();
        for (room, first, last) in written {
            if let Some(blocks) = rooms.get_mut(room) {
                blocks.retain(|block| block.first < *first || block.last > *last);
                if blocks.is_empty() {
                    rooms.remove(room);
                }
            }
        }
    }

    /// The last unwritten seq of `room`.
    pub fn head(&self, room: &str) -> Option<u64> {
        self.read()
            .get(room)
            .and_then(|blocks| blocks.back())
            .map(|block| block.last)
    }

    /// The first unwritten seq of `room`.
    pub fn first(&self, room: &str) -> Option<u64> {
        self.read()
            .get(room)
            .and_then(|blocks| blocks.front())
            .map(|block| block.first)
    }

    /// The unwritten blocks of `room` holding a seq after `after`, in seq order.
    pub fn after(&self, room: &str, after: u64) -> Vec<UnwrittenBlock> {
        self.read().get(room).map_or_else(Vec::new, |blocks| {
            blocks
                .iter()
                .filter(|block| block.last > after)
                .cloned()
                .collect()
        })
    }

    /// The unwritten event at `seq` in `room`.
    pub fn event_at(&self, room: &str, seq: u64, corruption: &Corruption) -> Option<StoredEvent> {
        let block = self
            .read()
            .get(room)?
            .iter()
            .find(|block| block.first <= seq && seq <= block.last)?
            .clone();
        block
            .events(room, corruption)
            .into_iter()
            .find(|event| event.seq == seq)
    }

    /// Every room with an unwritten block, and its first unwritten event.
    pub fn rooms(&self, corruption: &Corruption) -> Vec<(String, Option<StoredEvent>)> {
        let rooms: Vec<(String, Option<UnwrittenBlock>)> = self
            .read()
            .iter()
            .map(|(room, blocks)| (room.clone(), blocks.front().cloned()))
            .collect();
        rooms
            .into_iter()
            .map(|(room, block)| {
                let first = block.and_then(|b| b.events(&room, corruption).into_iter().next());
                (room, first)
            })
            .collect()
    }
}

/// Merges events read from the unwritten blocks into those read from the tree (both in seq
/// order): one event per seq, in seq order.
pub(super) fn merge(tree: Vec<StoredEvent>, unwritten: Vec<StoredEvent>) -> Vec<StoredEvent> {
    if unwritten.is_empty() {
        return tree;
    }
    if tree.is_empty() {
        return unwritten;
    }
    let mut out = Vec::with_capacity(tree.len() + unwritten.len());
    let (mut a, mut b) = (
        tree.into_iter().peekable(),
        unwritten.into_iter().peekable(),
    );
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.seq == y.seq => {
                b.next();
                a.next()
            }
            (Some(x), Some(y)) if x.seq < y.seq => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType, Timestamp};

    fn stored(seq: u64) -> StoredEvent {
        StoredEvent {
            seq,
            id: EventId::parse(&format!("e{seq}")).expect("id"),
            id_generated: false,
            event_type: EventType::ProcessingProgress,
            data: Arc::from("{}"),
            timestamp: Timestamp::from_millis(0),
            stored_at: Timestamp::from_millis(0),
        }
    }

    /// Events found in both places come once; the rest interleave by seq.
    #[test]
    fn merge_keeps_one_event_per_seq_in_order() {
        let seqs = |events: Vec<StoredEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
        let tree = [1, 2, 3, 6].map(stored).to_vec();
        let unwritten = [3, 4, 5, 7].map(stored).to_vec();
        assert_eq!(seqs(merge(tree, unwritten)), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(seqs(merge(Vec::new(), vec![stored(4)])), vec![4]);
        assert_eq!(seqs(merge(vec![stored(4)], Vec::new())), vec![4]);
    }

    fn block(first: u64, last: u64) -> UnwrittenBlock {
        UnwrittenBlock {
            first,
            last,
            value: Arc::from(&b""[..]),
        }
    }

    /// Settling drops a room's blocks within the written seqs and keeps the others.
    #[test]
    fn settle_forgets_only_what_was_written() {
        let unwritten = Unwritten::default();
        unwritten.add(&[
            ("photo:a".into(), block(1, 2)),
            ("photo:b".into(), block(5, 5)),
        ]);
        unwritten.add(&[("photo:a".into(), block(3, 4))]);
        assert_eq!(unwritten.head("photo:a"), Some(4));
        assert_eq!(unwritten.first("photo:a"), Some(1));
        assert_eq!(unwritten.after("photo:a", 2).len(), 1);
        unwritten.settle(&[("photo:a".into(), 1, 2), ("photo:c".into(), 1, 9)]);
        assert_eq!(unwritten.first("photo:a"), Some(3));
        unwritten.settle(&[("photo:a".into(), 3, 4), ("photo:b".into(), 5, 5)]);
        assert_eq!(unwritten.head("photo:a"), None);
        assert_eq!(unwritten.head("photo:b"), None);
        // A later turn's write leaves the blocks of a turn whose write failed.
        unwritten.add(&[("photo:a".into(), block(5, 6))]);
        unwritten.add(&[("photo:a".into(), block(7, 7))]);
        unwritten.settle(&[("photo:a".into(), 7, 7)]);
        assert_eq!(
            (unwritten.first("photo:a"), unwritten.head("photo:a")),
            (Some(5), Some(6))
        );
    }
}
