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
//! Which runs exist is the catalog (`m id_runs`), written in the same batch as the runs it lists.
//! A merge streams: it reads its runs chunk by chunk and writes the merged run in slices of
//! [`MERGE_SLICE_CHUNKS`] chunks, so what it holds in memory does not grow with the index. It
//! first names the run it builds as retired (records to remove), and its last batch lists that
//! run and names the merged-away runs retired instead; then their records are removed. A crash
//! or an error part way leaves retired runs' records, which the next merge or open removes. Entries hold a hash, not the id: callers check every candidate against the event
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

/// Chunks a merge writes per batch (about 64k entries, a few MB).
const MERGE_SLICE_CHUNKS: usize = 64;

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
    /// Runs whose records are to be removed: merged away, or a merge's run not finished.
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

    /// Runs whose records may still be in the tree but are to be removed.
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
            let mut run = RunBuilder::new(partition, next.next_run, part.len() as u64);
            next.next_run += 1;
            for entry in part {
                run.push(batch, entry.hash, &entry.placement)?;
            }
            next.partitions[usize::from(partition)].push(run.finish(batch)?);
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

    /// Starts a merge in `partition`: applies a catalog naming the run it will build as retired
    /// (so that its records are removed if the merge does not finish) and returns that catalog and
    /// the run's number, for [`Catalog::write_merge`].
    pub fn begin_merge(&self, db: &sled::Db, partition: u8) -> Result<(Catalog, u64), StoreError> {
        let mut next = self.clone();
        let no = next.next_run;
        next.next_run += 1;
        next.retired.push((partition, no));
        let mut batch = sled::Batch::default();
        next.stage(&mut batch)?;
        db.apply_batch(batch)?;
        Ok((next, no))
    }

    /// Writes run `no` (see [`Catalog::begin_merge`]) as the merge of `runs` of `partition`, in
    /// slices of [`MERGE_SLICE_CHUNKS`] chunks, then applies a catalog listing it in their place
    /// with `runs` retired; returns that catalog (their records still to be removed, see
    /// [`Catalog::stage_retire`]). `keep` gives what the merged run keeps of each placement
    /// (`None` drops it); equal entries are kept once.
    pub fn write_merge(
        &self,
        db: &sled::Db,
        partition: u8,
        runs: &[Run],
        no: u64,
        mut keep: impl FnMut(Vec<u8>) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Merged, StoreError> {
        let mut readers = runs
            .iter()
            .map(|run| RunReader::new(db, partition, run.no))
            .collect::<Result<Vec<_>, _>>()?;
        let mut run = RunBuilder::new(partition, no, runs.iter().map(|run| run.entries).sum());
        let mut batch = sled::Batch::default();
        let mut slices = 0;
        let mut group = Vec::new();
        let mut kept = Vec::new();
        while let Some(hash) = next_group(&mut readers, &mut group)? {
            kept.clear();
            for placement in group.drain(..) {
                kept.extend(keep(placement)?);
            }
            kept.sort_unstable();
            kept.dedup();
            for placement in &kept {
                run.push(&mut batch, hash, placement)?;
            }
            if run.staged >= MERGE_SLICE_CHUNKS {
                db.apply_batch(std::mem::take(&mut batch))?;
                run.staged = 0;
                slices += 1;
            }
        }
        let run = run.finish(&mut batch)?;
        let mut next = self.clone();
        let list = &mut next.partitions[usize::from(partition)];
        let at = list
            .iter()
            .position(|listed| runs.contains(listed))
            .unwrap_or(list.len());
        list.retain(|listed| !runs.contains(listed));
        if run.entries > 0 {
            list.insert(at.min(list.len()), run);
            next.retired.retain(|retired| *retired != (partition, no));
        }
        next.retired
            .extend(runs.iter().map(|merged| (partition, merged.no)));
        next.stage(&mut batch)?;
        db.apply_batch(batch)?;
        Ok(Merged {
            catalog: next,
            entries: run.entries,
            slices: slices + 1,
        })
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
}

/// What [`Catalog::write_merge`] did.
pub(super) struct Merged {
    /// The catalog listing the merged run, the merged-away runs retired.
    pub catalog: Catalog,
    /// Entries in the merged run.
    pub entries: u64,
    /// Batches its records took (the last with the catalog).
    pub slices: usize,
}

/// Reads one run's entries in hash order, a chunk at a time.
struct RunReader {
    records: sled::Iter,
    filter_key_len: usize,
    chunk: std::vec::IntoIter<Entry>,
    next: Option<Entry>,
}

impl RunReader {
    fn new(db: &sled::Db, partition: u8, no: u64) -> Result<Self, StoreError> {
        let prefix = keys::id_run(partition, no);
        let mut reader = Self {
            filter_key_len: prefix.len(),
            records: db.scan_prefix(prefix),
            chunk: Vec::new().into_iter(),
            next: None,
        };
        reader.advance()?;
        Ok(reader)
    }

    /// Moves to the next entry (`next` is `None` past the last).
    fn advance(&mut self) -> Result<(), StoreError> {
        loop {
            if let Some(entry) = self.chunk.next() {
                self.next = Some(entry);
                return Ok(());
            }
            let Some(record) = self.records.next() else {
                self.next = None;
                return Ok(());
            };
            let (key, value) = record?;
            if key.len() == self.filter_key_len {
                continue;
            }
            self.chunk = Chunk::parse(&key, &value)?.entries()?.into_iter();
        }
    }
}

/// Moves the placements of the smallest hash any reader is at into `group`, and returns that
/// hash (`None` once every reader is past its last entry).
fn next_group(
    readers: &mut [RunReader],
    group: &mut Vec<Vec<u8>>,
) -> Result<Option<u64>, StoreError> {
    let Some(hash) = readers
        .iter()
        .filter_map(|reader| reader.next.as_ref().map(|entry| entry.hash))
        .min()
    else {
        return Ok(None);
    };
    for reader in readers {
        while reader.next.as_ref().is_some_and(|entry| entry.hash == hash) {
            if let Some(entry) = reader.next.take() {
                group.push(entry.placement);
            }
            reader.advance()?;
        }
    }
    Ok(Some(hash))
}

/// The size tier of a run of `entries`.
fn tier(entries: u64) -> u32 {
    if entries < SMALLEST_TIER {
        0
    } else {
        1 + (entries / SMALLEST_TIER).ilog(MERGE_WIDTH as u64)
    }
}

/// Stages one run's records from entries given in hash order: each chunk once it is full, the
/// filter at the end.
struct RunBuilder {
    partition: u8,
    no: u64,
    chunk: ChunkBuilder,
    filter: FilterBuilder,
    entries: u64,
    /// Chunks staged since this was last reset (by the merge, per slice).
    staged: usize,
}

impl RunBuilder {
    /// A builder of run `no` in `partition`, for at most `capacity` entries (sizes its filter).
    fn new(partition: u8, no: u64, capacity: u64) -> Self {
        Self {
            partition,
            no,
            chunk: ChunkBuilder::default(),
            filter: FilterBuilder::new(capacity),
            entries: 0,
            staged: 0,
        }
    }

    fn push(
        &mut self,
        batch: &mut sled::Batch,
        hash: u64,
        placement: &[u8],
    ) -> Result<(), StoreError> {
        // A chunk runs on past its size rather than split equal hashes.
        if self.chunk.len() >= CHUNK_ENTRIES && self.chunk.last_hash() != Some(hash) {
            self.stage_chunk(batch)?;
        }
        self.chunk.push(hash, placement)?;
        self.filter.add(hash);
        self.entries += 1;
        Ok(())
    }

    fn stage_chunk(&mut self, batch: &mut sled::Batch) -> Result<(), StoreError> {
        if let Some(first) = self.chunk.first_hash() {
            batch.insert(
                keys::id_chunk(self.partition, self.no, first),
                self.chunk.encode()?,
            );
            self.chunk.clear();
            self.staged += 1;
        }
        Ok(())
    }

    /// Stages the last chunk and the filter (none for a run without entries); returns the run.
    fn finish(mut self, batch: &mut sled::Batch) -> Result<Run, StoreError> {
        self.stage_chunk(batch)?;
        if self.entries > 0 {
            batch.insert(keys::id_run(self.partition, self.no), self.filter.encode());
        }
        Ok(Run {
            no: self.no,
            entries: self.entries,
        })
    }
}

/// One chunk's entries as they are added.
#[derive(Default)]
struct ChunkBuilder {
    hashes: Vec<u64>,
    ends: Vec<u32>,
    placements: Vec<u8>,
}

impl ChunkBuilder {
    fn len(&self) -> usize {
        self.hashes.len()
    }

    fn first_hash(&self) -> Option<u64> {
        self.hashes.first().copied()
    }

    fn last_hash(&self) -> Option<u64> {
        self.hashes.last().copied()
    }

    fn push(&mut self, hash: u64, placement: &[u8]) -> Result<(), StoreError> {
        self.placements.extend_from_slice(placement);
        let end = u32::try_from(self.placements.len()).map_err(|_| chunk_too_big())?;
        self.hashes.push(hash);
        self.ends.push(end);
        Ok(())
    }

    fn clear(&mut self) {
        self.hashes.clear();
        self.ends.clear();
        self.placements.clear();
    }

    /// The chunk record: the format byte, the entry count (u32), the hashes (u64 each), the end
    /// of each entry's placement in the placement bytes (u32 each), the placement bytes;
    /// little-endian.
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let count = u32::try_from(self.len()).map_err(|_| chunk_too_big())?;
        let mut out = Vec::with_capacity(CHUNK_HEADER + self.len() * 12 + self.placements.len());
        out.push(FORMAT_RUN);
        out.extend_from_slice(&count.to_le_bytes());
        for hash in &self.hashes {
            out.extend_from_slice(&hash.to_le_bytes());
        }
        for end in &self.ends {
            out.extend_from_slice(&end.to_le_bytes());
        }
        out.extend_from_slice(&self.placements);
        Ok(out)
    }
}

fn chunk_too_big() -> StoreError {
    StoreError::Corrupt {
        key: "id run chunk".into(),
        reason: "a chunk over 4 GiB".into(),
    }
}

/// The chunk record of `entries` (sorted by hash).
#[cfg(any(test, feature = "fuzzing"))]
fn encode_chunk(entries: &[Entry]) -> Result<Vec<u8>, StoreError> {
    let mut chunk = ChunkBuilder::default();
    for entry in entries {
        chunk.push(entry.hash, &entry.placement)?;
    }
    chunk.encode()
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

    /// Every entry, in hash order.
    fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        (0..self.count)
            .map(|index| {
                Ok(Entry {
                    hash: self.hash(index),
                    placement: self.placement(index)?.to_vec(),
                })
            })
            .collect()
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

/// A run's filter as hashes are added.
struct FilterBuilder(Vec<u64>);

impl FilterBuilder {
    /// A filter sized for `capacity` entries.
    fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        let words = capacity
            .saturating_mul(FILTER_BITS_PER_ENTRY)
            .div_ceil(64)
            .max(1);
        Self(vec![0; words])
    }

    fn add(&mut self, hash: u64) {
        let (word, mask) = filter_slot(hash, self.0.len());
        self.0[word] |= mask;
    }

    /// The filter record: the format byte, then the words (little-endian).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.0.len() * 8);
        out.push(FORMAT_RUN);
        for word in &self.0 {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }
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

/// Run filters read so far, per partition (a few runs each, searched in place): a filter is read
/// once, not once per lookup. A run's filter never changes (run numbers are not reused), so they
/// may be kept across groups; [`Filters::retain_listed`] drops those of runs merged away.
pub(super) struct Filters(Vec<Vec<(u64, Option<sled::IVec>)>>);

impl Default for Filters {
    fn default() -> Self {
        Self(vec![Vec::new(); PARTITIONS])
    }
}

impl Filters {
    /// Keeps only the filters of runs `catalog` lists.
    pub fn retain_listed(&mut self, catalog: &Catalog) {
        for (read, listed) in self.0.iter_mut().zip(&catalog.partitions) {
            read.retain(|(no, _)| listed.iter().any(|run| run.no == *no));
        }
    }

    /// The bytes of the filters held.
    pub fn bytes(&self) -> usize {
        self.0
            .iter()
            .flatten()
            .map(|(_, filter)| filter.as_ref().map_or(0, |f| f.len()))
            .sum()
    }

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
    let entries = match chunk.entries() {
        Ok(entries) => entries,
        Err(StoreError::Corrupt { .. }) => return,
        Err(other) => panic!("reading a chunk gave a non-corrupt error: {other}"),
    };
    for entry in &entries {
        // Fuzzed hashes need not be sorted: the search must only not panic.
        let _ = chunk.matching(entry.hash);
    }
    let again = encode_chunk(&entries).expect("encode");
    let reread = Chunk::parse(b"x", &again).expect("parse what was encoded");
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(reread.hash(index), entry.hash);
        assert_eq!(reread.placement(index).expect("placement"), entry.placement);
    }
}

#[cfg(test)]
pub(super) mod tests {
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
        let bytes = encode_chunk(&entries).expect("encode");
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
        let mut builder = FilterBuilder::new(entries.len() as u64);
        for e in &entries {
            builder.add(e.hash);
        }
        let filter = builder.encode();
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

    /// Merges `runs` keeping every entry, as the writer does below the smallest tier.
    pub(in crate::store) fn merge(
        db: &sled::Db,
        catalog: &Catalog,
        partition: u8,
        runs: &[Run],
    ) -> Merged {
        let (building, no) = catalog.begin_merge(db, partition).expect("begin");
        building
            .write_merge(db, partition, runs, no, |placement| Ok(Some(placement)))
            .expect("merge")
    }

    /// Stages `count` entries of `partition` as one run each `round` (their hashes interleave
    /// across the runs); returns every entry.
    pub(in crate::store) fn write_runs(
        db: &sled::Db,
        catalog: &mut Catalog,
        partition: u8,
        rounds: u64,
        count: u64,
    ) -> Vec<Entry> {
        let mut all = Vec::new();
        for round in 0..rounds {
            let entries: Vec<Entry> = (0..count)
                .map(|i| {
                    let hash = u64::from(partition) << 60 | (i * rounds + round) << 8;
                    entry(hash, format!("{round}-{i}").as_bytes())
                })
                .collect();
            let mut batch = sled::Batch::default();
            *catalog = catalog.stage_new(&mut batch, &entries).expect("stage");
            apply(db, batch);
            all.extend(entries);
        }
        all
    }

    /// Filters kept across lookups answer for the runs listed, and those of runs merged away are
    /// dropped, so that what is kept follows the catalog.
    #[test]
    fn kept_filters_follow_the_catalog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let mut catalog = Catalog::load(&db).expect("load");
        let all = write_runs(&db, &mut catalog, 2, MERGE_WIDTH as u64, 2_000);
        let mut filters = Filters::default();
        finds_all_with(&db, &catalog, &mut filters, &all);
        let four = filters.bytes();
        assert!(four > 0);
        let (partition, runs) = catalog.plan_merge().expect("a tier is full");
        catalog = merge(&db, &catalog, partition, &runs).catalog;
        filters.retain_listed(&catalog);
        assert_eq!(
            filters.bytes(),
            0,
            "the merged-away runs' filters are dropped"
        );
        finds_all_with(&db, &catalog, &mut filters, &all);
        assert!(filters.bytes() > 0 && filters.bytes() <= four + 16);
        filters.retain_listed(&catalog);
        assert!(filters.bytes() > 0, "a listed run's filter is kept");
    }

    /// A merge of runs bigger than a slice writes the merged run in several batches (what it
    /// holds in memory is a slice), interleaving the runs' entries into one hash order.
    #[test]
    fn a_big_merge_is_written_in_slices() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let mut catalog = Catalog::load(&db).expect("load");
        let per_run = (MERGE_SLICE_CHUNKS * CHUNK_ENTRIES) as u64;
        let all = write_runs(&db, &mut catalog, 3, MERGE_WIDTH as u64, per_run);
        let (partition, runs) = catalog.plan_merge().expect("a tier is full");
        assert_eq!(partition, 3);
        let merged = merge(&db, &catalog, partition, &runs);
        assert!(merged.slices >= 3, "{} batches", merged.slices);
        assert_eq!(merged.entries, all.len() as u64);
        catalog = merged.catalog;
        assert_eq!(catalog.runs(), 1);
        let mut batch = sled::Batch::default();
        catalog = catalog.stage_retire(&db, &mut batch).expect("retire");
        apply(&db, batch);
        let mut hashes = Vec::new();
        for record in db.scan_prefix([keys::ID_RUN]) {
            let (key, value) = record.expect("record");
            if key.len() == keys::id_run(0, 0).len() {
                continue;
            }
            let chunk = Chunk::parse(&key, &value).expect("chunk");
            assert!(chunk.count <= CHUNK_ENTRIES, "{} entries", chunk.count);
            hashes.extend((0..chunk.count).map(|i| chunk.hash(i)));
        }
        assert!(hashes.is_sorted(), "one hash order across the chunks");
        assert_eq!(hashes.len(), all.len());
        finds_all(&db, &catalog, &all);
    }

    /// Every one of `entries` is found with its placement.
    pub(in crate::store) fn finds_all(db: &sled::Db, catalog: &Catalog, entries: &[Entry]) {
        finds_all_with(db, catalog, &mut Filters::default(), entries);
    }

    /// [`finds_all`], reading filters through `filters` (kept from earlier lookups).
    fn finds_all_with(db: &sled::Db, catalog: &Catalog, filters: &mut Filters, entries: &[Entry]) {
        for e in entries {
            let found = catalog.find(db, filters, e.hash).expect("find");
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
        catalog = merge(&db, &catalog, partition, &runs).catalog;
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
