//! The event-id index's records: runs of `(id hash, placement)` entries sorted by hash, LSM-style.
//!
//! sled's cost is per record (about as much for a small index record as for a block of events),
//! so the index is not a record per id. Each batch the derived writer takes becomes one run per
//! partition of the hash space it touches (at most [`PARTITIONS`] records' worth of work for
//! thousands of ids), and runs of a similar size are merged in the background, so a partition
//! holds a handful of runs. A run is stored as a filter record (`x partition run`: a Bloom filter
//! over its hashes, about 1% false positives) and chunk records (`x partition run firstHash`: up
//! to [`CHUNK_ENTRIES`] entries each, binary-searched in place). A lookup asks each run's filter
//! and reads one chunk of the runs that may hold the hash.
//!
//! Which runs exist is the catalog (`m id_runs`), written in the same batch as the runs it lists;
//! a merge writes the merged run and a catalog that lists it and names the merged-away runs as
//! retired, then removes the retired runs' records (again at the next open, after a crash in
//! between). Entries hold a hash, not the id: callers check every candidate against the event
//! record it names, so a hash shared by two ids costs a read, never a wrong answer.

use siphasher::sip::SipHasher13;

use super::StoreError;
use super::codec;
use super::keys;

/// Partitions of the hash space (by its top four bits): a batch of ids becomes at most this many
/// runs, and a lookup reads only its partition's runs.
pub(super) const PARTITIONS: usize = 16;

/// Entries per chunk record (a chunk runs on past it rather than split equal hashes).
const CHUNK_ENTRIES: usize = 1024;

/// Filter bits per entry and bits set per hash: about 1% false positives in one-word blocks.
const FILTER_BITS_PER_ENTRY: usize = 16;
const FILTER_PROBES: u64 = 8;

/// Runs of one size tier that are merged into one.
const MERGE_WIDTH: usize = 4;

/// Runs below this many entries are all of the lowest size tier; above it a tier spans a factor
/// of [`MERGE_WIDTH`].
pub(super) const SMALLEST_TIER: u64 = 1024;

/// The format byte of chunk and filter records.
const FORMAT_RUN: u8 = 1;

/// Bytes before a chunk's hashes: the format byte and the entry count.
const CHUNK_HEADER: usize = 5;

/// The index's hash of an event id: SipHash 1-3 with fixed keys, so it never changes between
/// builds or machines (it is stored).
pub(super) fn hash(id: &str) -> u64 {
    SipHasher13::new_with_keys(0x736f_636b_6574_2d62, 0x7269_6467_652d_6964).hash(id.as_bytes())
}

/// The partition of a hash.
fn partition(hash: u64) -> u8 {
    (hash >> 60) as u8
}

/// One index entry: an id's hash and its encoded placement (rooms and seqs, see `ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// [`hash`] of the event id.
    pub hash: u64,
    /// The encoded placement record.
    pub placement: Vec<u8>,
}

/// One run of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    /// The run's number (unique in the store, never reused).
    pub no: u64,
    /// Its entries.
    pub entries: u64,
}

/// Which runs hold the index: per partition, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Catalog {
    partitions: Vec<Vec<Run>>,
    /// Runs merged away whose records may still be in the tree.
    retired: Vec<(u8, u64)>,
    next_run: u64,
}

/// The stored catalog: `(partition, run, entries)` of each run, then the retired runs.
type CatalogRecord = (Vec<(u8, u64, u64)>, Vec<(u8, u64)>);

impl Default for Catalog {
    fn default() -> Self {
        Self {
            partitions: vec![Vec::new(); PARTITIONS],
            retired: Vec::new(),
            next_run: 1,
        }
    }
}

impl Catalog {
    /// The stored catalog (empty when the store has none).
    pub fn load(db: &sled::Db) -> Result<Self, StoreError> {
        let key = keys::meta(keys::META_ID_RUNS);
        let Some(bytes) = db.get(&key)? else {
            return Ok(Self::default());
        };
        let (runs, retired): CatalogRecord = codec::decode(&key, &bytes)?;
        let mut catalog = Self {
            retired,
            ..Self::default()
        };
        for (partition, no, entries) in runs {
            let Some(list) = catalog.partitions.get_mut(usize::from(partition)) else {
                return Err(StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: format!("id run partition {partition} out of range"),
                });
            };
            list.push(Run { no, entries });
        }
        catalog.next_run = catalog
            .partitions
            .iter()
            .flatten()
            .map(|run| run.no)
            .chain(catalog.retired.iter().map(|(_, no)| *no))
            .max()
            .unwrap_or(0)
            + 1;
        Ok(catalog)
    }

    fn stage(&self, batch: &mut sled::Batch) -> Result<(), StoreError> {
        let mut runs = Vec::new();
        for (partition, list) in self.partitions.iter().enumerate() {
            for run in list {
                runs.push((partition as u8, run.no, run.entries));
            }
        }
        let record: CatalogRecord = (runs, self.retired.clone());
        batch.insert(keys::meta(keys::META_ID_RUNS), codec::encode(&record)?);
        Ok(())
    }

    /// Entries in every run (an id stored twice, or whose event is pruned, may count twice or
    /// still count until its run is merged).
    pub fn entries(&self) -> u64 {
        self.partitions
            .iter()
            .flatten()
            .map(|run| run.entries)
            .sum()
    }

    /// How many runs hold the index.
    pub fn runs(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    /// Runs merged away whose records may still be in the tree.
    pub fn retired(&self) -> &[(u8, u64)] {
        &self.retired
    }

    /// Stages `entries` as new runs, one per partition they fall in, and the catalog listing them
    /// into `batch`; returns that catalog, to be used once the batch is applied.
    pub fn stage_new<'a>(
        &self,
        batch: &mut sled::Batch,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Catalog, StoreError> {
        let mut next = self.clone();
        let mut entries: Vec<&Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(next);
        }
        entries.sort_unstable_by_key(|entry| entry.hash);
        for part in entries.chunk_by(|a, b| partition(a.hash) == partition(b.hash)) {
            let partition = partition(part[0].hash);
            let no = next.next_run;
            next.next_run += 1;
            stage_run(batch, partition, no, part)?;
            next.partitions[usize::from(partition)].push(Run {
                no,
                entries: part.len() as u64,
            });
        }
        next.stage(batch)?;
        Ok(next)
    }

    /// The first partition with [`MERGE_WIDTH`] runs of one size tier, and those runs.
    pub fn plan_merge(&self) -> Option<(u8, Vec<Run>)> {
        for (partition, runs) in self.partitions.iter().enumerate() {
            for run in runs {
                let tier = tier(run.entries);
                let same: Vec<Run> = runs
                    .iter()
                    .filter(|other| self::tier(other.entries) == tier)
                    .take(MERGE_WIDTH)
                    .copied()
                    .collect();
                if same.len() == MERGE_WIDTH {
                    return Some((partition as u8, same));
                }
            }
        }
        None
    }

    /// Stages the run that replaces `merged` in `partition` (holding `entries`) and a catalog
    /// listing it, with `merged` retired; returns that catalog.
    pub fn stage_merge(
        &self,
        batch: &mut sled::Batch,
        partition: u8,
        merged: &[Run],
        mut entries: Vec<Entry>,
    ) -> Result<Catalog, StoreError> {
        let mut next = self.clone();
        let list = &mut next.partitions[usize::from(partition)];
        let at = list
            .iter()
            .position(|run| merged.contains(run))
            .unwrap_or(list.len());
        list.retain(|run| !merged.contains(run));
        if !entries.is_empty() {
            entries.sort_by(|a, b| a.hash.cmp(&b.hash).then(a.placement.cmp(&b.placement)));
            entries.dedup();
            let no = next.next_run;
            next.next_run += 1;
            stage_run(batch, partition, no, &entries.iter().collect::<Vec<_>>())?;
            list.insert(
                at.min(list.len()),
                Run {
                    no,
                    entries: entries.len() as u64,
                },
            );
        }
        next.retired
            .extend(merged.iter().map(|run| (partition, run.no)));
        next.stage(batch)?;
        Ok(next)
    }

    /// Stages the removal of every retired run's records and a catalog without them; returns
    /// that catalog.
    pub fn stage_retire(
        &self,
        db: &sled::Db,
        batch: &mut sled::Batch,
    ) -> Result<Catalog, StoreError> {
        let mut next = self.clone();
        for (partition, no) in next.retired.drain(..) {
            for key in db.scan_prefix(keys::id_run(partition, no)).keys() {
                batch.remove(key?);
            }
        }
        next.stage(batch)?;
        Ok(next)
    }

    /// The encoded placements of the entries with `hash`, in every run of its partition.
    pub fn find(
        &self,
        db: &sled::Db,
        filters: &mut Filters,
        hash: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let partition = partition(hash);
        let mut found = Vec::new();
        for run in self.partitions[usize::from(partition)].iter().rev() {
            if !filters.may_hold(db, partition, run.no, hash)? {
                continue;
            }
            let start = keys::id_run(partition, run.no);
            let Some(entry) = db
                .range(start..=keys::id_chunk(partition, run.no, hash))
                .next_back()
            else {
                continue;
            };
            let (key, value) = entry?;
            if key.len() != keys::id_chunk(partition, run.no, 0).len() {
                continue;
            }
            let chunk = Chunk::parse(&key, &value)?;
            for index in chunk.matching(hash) {
                found.push(chunk.placement(index)?.to_vec());
            }
        }
        Ok(found)
    }

    /// Every entry of `run` in `partition`, in hash order.
    pub fn read_run(
        &self,
        db: &sled::Db,
        partition: u8,
        run: &Run,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::with_capacity(usize::try_from(run.entries).unwrap_or(0));
        let filter_key_len = keys::id_run(partition, run.no).len();
        for record in db.scan_prefix(keys::id_run(partition, run.no)) {
            let (key, value) = record?;
            if key.len() == filter_key_len {
                continue;
            }
            let chunk = Chunk::parse(&key, &value)?;
            for index in 0..chunk.count {
                entries.push(Entry {
                    hash: chunk.hash(index),
                    placement: chunk.placement(index)?.to_vec(),
                });
            }
        }
        Ok(entries)
    }
}

/// The size tier of a run of `entries`.
fn tier(entries: u64) -> u32 {
    if entries < SMALLEST_TIER {
        0
    } else {
        1 + (entries / SMALLEST_TIER).ilog(MERGE_WIDTH as u64)
    }
}

/// Stages a run's filter and chunks (`entries` sorted by hash, all of `partition`).
fn stage_run(
    batch: &mut sled::Batch,
    partition: u8,
    no: u64,
    entries: &[&Entry],
) -> Result<(), StoreError> {
    batch.insert(keys::id_run(partition, no), encode_filter(entries));
    let mut start = 0;
    while start < entries.len() {
        let mut end = (start + CHUNK_ENTRIES).min(entries.len());
        while end < entries.len() && entries[end].hash == entries[end - 1].hash {
            end += 1;
        }
        let chunk = &entries[start..end];
        batch.insert(
            keys::id_chunk(partition, no, chunk[0].hash),
            encode_chunk(chunk)?,
        );
        start = end;
    }
    Ok(())
}

/// A chunk record: the format byte, the entry count (u32), the hashes (u64 each), the end of
/// each entry's placement in the placement bytes (u32 each), the placement bytes; little-endian.
fn encode_chunk(entries: &[&Entry]) -> Result<Vec<u8>, StoreError> {
    let placements: usize = entries.iter().map(|entry| entry.placement.len()).sum();
    let too_big = || StoreError::Corrupt {
        key: "id run chunk".into(),
        reason: "a chunk over 4 GiB".into(),
    };
    let count = u32::try_from(entries.len()).map_err(|_| too_big())?;
    let mut out = Vec::with_capacity(CHUNK_HEADER + entries.len() * 12 + placements);
    out.push(FORMAT_RUN);
    out.extend_from_slice(&count.to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&entry.hash.to_le_bytes());
    }
    let mut end = 0usize;
    for entry in entries {
        end += entry.placement.len();
        out.extend_from_slice(&u32::try_from(end).map_err(|_| too_big())?.to_le_bytes());
    }
    for entry in entries {
        out.extend_from_slice(&entry.placement);
    }
    Ok(out)
}

/// A chunk record read in place.
struct Chunk<'a> {
    key: &'a [u8],
    count: usize,
    hashes: &'a [u8],
    ends: &'a [u8],
    placements: &'a [u8],
}

impl<'a> Chunk<'a> {
    fn parse(key: &'a [u8], bytes: &'a [u8]) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: keys::display(key),
            reason: reason.into(),
        };
        let (Some(&FORMAT_RUN), Some(count)) = (bytes.first(), bytes.get(1..CHUNK_HEADER)) else {
            return Err(corrupt("not an id run chunk"));
        };
        let count = u32::from_le_bytes(count.try_into().unwrap_or_default()) as usize;
        let hashes_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(CHUNK_HEADER))
            .ok_or_else(|| corrupt("entry count out of range"))?;
        let ends_end = count
            .checked_mul(4)
            .and_then(|n| n.checked_add(hashes_end))
            .ok_or_else(|| corrupt("entry count out of range"))?;
        if bytes.len() < ends_end {
            return Err(corrupt("truncated id run chunk"));
        }
        Ok(Self {
            key,
            count,
            hashes: &bytes[CHUNK_HEADER..hashes_end],
            ends: &bytes[hashes_end..ends_end],
            placements: &bytes[ends_end..],
        })
    }

    fn hash(&self, index: usize) -> u64 {
        let at = index * 8;
        u64::from_le_bytes(self.hashes[at..at + 8].try_into().unwrap_or_default())
    }

    fn end(&self, index: usize) -> usize {
        let at = index * 4;
        u32::from_le_bytes(self.ends[at..at + 4].try_into().unwrap_or_default()) as usize
    }

    /// The indexes of the entries with `hash`.
    fn matching(&self, hash: u64) -> std::ops::Range<usize> {
        let mut low = 0;
        let mut high = self.count;
        while low < high {
            let mid = low + (high - low) / 2;
            if self.hash(mid) < hash {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let mut end = low;
        while end < self.count && self.hash(end) == hash {
            end += 1;
        }
        low..end
    }

    fn placement(&self, index: usize) -> Result<&'a [u8], StoreError> {
        let start = if index == 0 { 0 } else { self.end(index - 1) };
        let end = self.end(index);
        self.placements
            .get(start..end)
            .ok_or_else(|| StoreError::Corrupt {
                key: keys::display(self.key),
                reason: format!("entry {index} out of the chunk's bounds"),
            })
    }
}

/// The filter word of `hash` among `words` and the bits it sets there: a blocked Bloom filter,
/// where one hash touches one 64-bit word (one cache line read per run, no division), with
/// [`FILTER_PROBES`] bits picked by six-bit slices of the hash's low bits. The word is picked by
/// the high half of a product, so the two choices use different bits.
fn filter_slot(hash: u64, words: usize) -> (usize, u64) {
    let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let word = ((u128::from(mixed) * words as u128) >> 64) as usize;
    let mask = (0..FILTER_PROBES).fold(0u64, |mask, i| mask | 1 << ((hash >> (6 * i)) & 63));
    (word, mask)
}

/// A filter record: the format byte, then the words (little-endian).
fn encode_filter(entries: &[&Entry]) -> Vec<u8> {
    let words = (entries.len() * FILTER_BITS_PER_ENTRY).div_ceil(64).max(1);
    let mut filter = vec![0u64; words];
    for entry in entries {
        let (word, mask) = filter_slot(entry.hash, words);
        filter[word] |= mask;
    }
    let mut out = Vec::with_capacity(1 + words * 8);
    out.push(FORMAT_RUN);
    for word in filter {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out
}

/// Whether the filter record `filter` may hold `hash` (a record that is not a filter says yes).
fn filter_may_hold(filter: &[u8], hash: u64) -> bool {
    let Some((&FORMAT_RUN, words)) = filter.split_first() else {
        return true;
    };
    if words.is_empty() || words.len() % 8 != 0 {
        return true;
    }
    let (word, mask) = filter_slot(hash, words.len() / 8);
    let at = word * 8;
    let word = u64::from_le_bytes(words[at..at + 8].try_into().unwrap_or([0xff; 8]));
    word & mask == mask
}

/// Run filters read so far (one read per run for a group of lookups instead of one per lookup),
/// per partition: a few runs each, searched in place.
pub(super) struct Filters(Vec<Vec<(u64, Option<sled::IVec>)>>);

impl Default for Filters {
    fn default() -> Self {
        Self(vec![Vec::new(); PARTITIONS])
    }
}

impl Filters {
    /// Whether run `no`'s filter may hold `hash` (a run without a filter record may).
    fn may_hold(
        &mut self,
        db: &sled::Db,
        partition: u8,
        no: u64,
        hash: u64,
    ) -> Result<bool, StoreError> {
        let read = &mut self.0[usize::from(partition)];
        let at = match read.iter().position(|(run, _)| *run == no) {
            Some(at) => at,
            None => {
                read.push((no, db.get(keys::id_run(partition, no))?));
                read.len() - 1
            }
        };
        Ok(read[at]
            .1
            .as_deref()
            .is_none_or(|filter| filter_may_hold(filter, hash)))
    }
}

/// The fuzz target's check of id run records (see `fuzzing`): arbitrary bytes read as a filter
/// answer without a panic, and read as a chunk give entries or [`StoreError::Corrupt`]; entries
/// read whole survive encode then read.
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn check_record(bytes: &[u8]) {
    let _ = filter_may_hold(bytes, hash("ev-1"));
    let Ok(chunk) = Chunk::parse(b"x", bytes) else {
        return;
    };
    let mut entries = Vec::with_capacity(chunk.count.min(1 << 16));
    for index in 0..chunk.count {
        match chunk.placement(index) {
            Ok(placement) => entries.push(Entry {
                hash: chunk.hash(index),
                placement: placement.to_vec(),
            }),
            Err(StoreError::Corrupt { .. }) => return,
            Err(other) => panic!("reading a chunk gave a non-corrupt error: {other}"),
        }
        let _ = chunk.matching(chunk.hash(index));
    }
    let again = encode_chunk(&entries.iter().collect::<Vec<_>>()).expect("encode");
    let reread = Chunk::parse(b"x", &again).expect("parse what was encoded");
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(reread.hash(index), entry.hash);
        assert_eq!(reread.placement(index).expect("placement"), entry.placement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: u64, placement: &[u8]) -> Entry {
        Entry {
            hash,
            placement: placement.to_vec(),
        }
    }

    fn apply(db: &sled::Db, batch: sled::Batch) {
        db.apply_batch(batch).expect("apply");
    }

    #[test]
    fn a_chunk_finds_each_hash_and_only_it() {
        let entries = [
            entry(3, b"a"),
            entry(5, b"bb"),
            entry(5, b"ccc"),
            entry(9, b""),
        ];
        let bytes = encode_chunk(&entries.iter().collect::<Vec<_>>()).expect("encode");
        let chunk = Chunk::parse(b"k", &bytes).expect("parse");
        assert_eq!(chunk.matching(5), 1..3);
        assert_eq!(chunk.placement(1).expect("placement"), b"bb");
        assert_eq!(chunk.placement(2).expect("placement"), b"ccc");
        assert_eq!(chunk.matching(9), 3..4);
        assert!(chunk.matching(4).is_empty());
        assert!(chunk.matching(10).is_empty());
        assert!(Chunk::parse(b"k", &bytes[..10]).is_err());
        let mut lying = bytes.clone();
        let last_end = CHUNK_HEADER + 4 * 8 + 3 * 4;
        lying[last_end..last_end + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let chunk = Chunk::parse(b"k", &lying).expect("header intact");
        assert!(
            chunk.placement(3).is_err(),
            "an end past the bytes is corrupt"
        );
    }

    #[test]
    fn a_filter_never_misses_an_entry_and_rejects_most_others() {
        let entries: Vec<Entry> = (0..5_000u64)
            .map(|i| entry(hash(&format!("id-{i}")), b""))
            .collect();
        let filter = encode_filter(&entries.iter().collect::<Vec<_>>());
        assert!(entries.iter().all(|e| filter_may_hold(&filter, e.hash)));
        let false_positives = (0..10_000u64)
            .filter(|i| filter_may_hold(&filter, hash(&format!("other-{i}"))))
            .count();
        assert!(false_positives < 200, "{false_positives} of 10000");
    }

    #[test]
    fn the_hash_is_stable() {
        // Stored in every entry: a change would lose every id written before it.
        assert_eq!(hash("ev-1"), 6_200_944_156_940_358_672);
    }

    /// Every one of `entries` is found with its placement.
    fn finds_all(db: &sled::Db, catalog: &Catalog, entries: &[Entry]) {
        let mut filters = Filters::default();
        for e in entries {
            let found = catalog.find(db, &mut filters, e.hash).expect("find");
            assert!(found.contains(&e.placement), "entry {:x} found", e.hash);
        }
    }

    #[test]
    fn runs_are_written_merged_and_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let mut catalog = Catalog::load(&db).expect("load");
        let mut all = Vec::new();
        for round in 0..MERGE_WIDTH as u64 {
            let entries: Vec<Entry> = (0..3 * CHUNK_ENTRIES as u64)
                .map(|i| {
                    let id = format!("r{round}-{i}");
                    entry(hash(&id), id.as_bytes())
                })
                .collect();
            all.extend(entries.clone());
            let mut batch = sled::Batch::default();
            catalog = catalog.stage_new(&mut batch, &entries).expect("stage");
            apply(&db, batch);
        }
        assert_eq!(catalog.runs(), MERGE_WIDTH * PARTITIONS);
        assert_eq!(Catalog::load(&db).expect("reload"), catalog);
        finds_all(&db, &catalog, &all);

        let (partition, runs) = catalog.plan_merge().expect("a tier is full");
        assert_eq!(runs.len(), MERGE_WIDTH);
        let mut merged = Vec::new();
        for run in &runs {
            merged.extend(catalog.read_run(&db, partition, run).expect("read"));
        }
        let mut batch = sled::Batch::default();
        catalog = catalog
            .stage_merge(&mut batch, partition, &runs, merged)
            .expect("merge");
        apply(&db, batch);
        assert_eq!(catalog.retired().len(), MERGE_WIDTH);
        let mut batch = sled::Batch::default();
        catalog = catalog.stage_retire(&db, &mut batch).expect("retire");
        apply(&db, batch);
        assert!(catalog.retired().is_empty());
        for run in &runs {
            assert_eq!(
                db.scan_prefix(keys::id_run(partition, run.no)).count(),
                0,
                "retired run's records removed"
            );
        }
        assert_eq!(catalog.runs(), MERGE_WIDTH * PARTITIONS - MERGE_WIDTH + 1);
        finds_all(&db, &catalog, &all);
        assert_eq!(catalog.entries(), all.len() as u64);
        assert_eq!(Catalog::load(&db).expect("reload"), catalog);
    }
}
