//! The server under load ([`Target`]) and a group of clients steered together ([`Fleet`]):
//! spawned with a bound on concurrent connects, waited for with deadlines, stopped, and checked
//! against the heads the publisher was told.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use socket_bridge::auth::Permission;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::client::{self, ClientEnd, ClientSpec, Phase, Shared};
use super::measure::{CpuSample, CpuUse, Proc};
use super::publish::{Publisher, Tokens, uploaded};

/// How often waits look at the counters.
const POLL: Duration = Duration::from_millis(2);

/// The server under load.
pub struct Target {
    /// `http://host:port`.
    pub base: Arc<str>,
    /// Its process, for CPU and memory (none: those figures are left out).
    pub pid: Option<u32>,
    /// Its name in reports (`socket-bridge`, `node`).
    pub name: String,
    /// Tokens signed with its secret.
    pub tokens: Tokens,
    /// A unique prefix for this run's ids, so that runs against one server never share a room.
    pub run: String,
}

impl Target {
    /// A publisher for this server.
    pub fn publisher(&self) -> anyhow::Result<Publisher> {
        Publisher::new(&self.base, &self.tokens)
    }

    /// The server's CPU now, if its pid is known.
    pub fn cpu(&self) -> anyhow::Result<Option<CpuSample>> {
        self.pid
            .map(|pid| CpuSample::take(Proc::Pid(pid)))
            .transpose()
    }

    /// The server's resident memory in bytes, if its pid is known.
    pub fn rss(&self) -> anyhow::Result<Option<u64>> {
        self.pid.map(|pid| Proc::Pid(pid).rss_bytes()).transpose()
    }

    /// Photo `k` of this run and its owner.
    pub fn photo(&self, k: usize) -> (String, String) {
        (format!("{}-p{k}", self.run), format!("{}-u{k}", self.run))
    }

    /// Stores a `photo.uploaded` for photos `0..count` (owners as [`Self::photo`]).
    pub async fn create_photos(&self, publisher: &Publisher, count: usize) -> anyhow::Result<()> {
        let events: Vec<String> = (0..count)
            .map(|k| {
                let (photo, owner) = self.photo(k);
                uploaded(&photo, &owner)
            })
            .collect();
        for chunk in events.chunks(1000) {
            publisher
                .post(super::publish::batch(chunk.iter().cloned()))
                .await?;
        }
        Ok(())
    }

    /// `count` client specs starting at number `first`, client `i` subscribed to photo
    /// `photo_of(i)` as its owner.
    pub fn owner_clients(
        &self,
        first: usize,
        count: usize,
        measure: bool,
        photo_of: impl Fn(usize) -> usize,
    ) -> anyhow::Result<Vec<ClientSpec>> {
        let mut tokens: Vec<(usize, String)> = Vec::new();
        (first..first + count)
            .map(|i| {
                let k = photo_of(i);
                let (photo, owner) = self.photo(k);
                let token = match tokens.iter().find(|(p, _)| *p == k) {
                    Some((_, token)) => token.clone(),
                    None => {
                        let token = self.tokens.mint(&owner, &[Permission::ReadPhotos])?;
                        tokens.push((k, token.clone()));
                        token
                    }
                };
                Ok(ClientSpec {
                    name: format!("c{i}"),
                    token,
                    client_id: format!("{}-c{i}", self.run),
                    photo: Some(photo),
                    measure,
                })
            })
            .collect()
    }
}

/// Clients steered through one [`Phase`] channel.
pub struct Fleet {
    phase: watch::Sender<Phase>,
    clients: Vec<JoinHandle<ClientEnd>>,
}

impl Fleet {
    /// Spawns a client per spec; at most `connecting` of all fleets sharing `gate` connect at once.
    pub fn spawn(
        target: &Target,
        specs: Vec<ClientSpec>,
        shared: &Arc<Shared>,
        gate: &Arc<Semaphore>,
    ) -> Self {
        let (phase, watcher) = watch::channel(Phase::Run);
        let clients = specs
            .into_iter()
            .map(|spec| {
                tokio::spawn(client::run(
                    spec,
                    Arc::clone(&target.base),
                    Arc::clone(shared),
                    watcher.clone(),
                    Arc::clone(gate),
                ))
            })
            .collect();
        Self { phase, clients }
    }

    /// Tells every client of this fleet what to do.
    pub fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// Stops every client and returns their ends.
    pub async fn stop(self) -> anyhow::Result<Vec<ClientEnd>> {
        self.set(Phase::Stop);
        let mut ends = Vec::with_capacity(self.clients.len());
        for client in self.clients {
            ends.push(client.await?);
        }
        Ok(ends)
    }
}

/// Waits until `done()` holds, failing at the first client failure or after `limit`; returns how
/// long it took.
pub async fn wait_for(
    shared: &Shared,
    what: &str,
    limit: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(start.elapsed());
        }
        let (failures, first) = shared.failures();
        if failures > 0 {
            bail!(
                "{failures} client failures while waiting for {what}, the first:\n  {}",
                first.join("\n  ")
            );
        }
        if start.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Creates `rooms` photos and connects `clients` of their owners, client `i` subscribed to
/// photo `i % rooms` and measuring, `connecting` at a time; returns once every one is ready.
pub async fn owners_of_photos(
    target: &Target,
    publisher: &Publisher,
    rooms: usize,
    clients: usize,
    connecting: usize,
    limit: Duration,
) -> anyhow::Result<(Arc<Shared>, Fleet)> {
    target.create_photos(publisher, rooms).await?;
    let shared = Shared::new(1);
    let gate = Arc::new(Semaphore::new(connecting));
    let specs = target.owner_clients(0, clients, true, |i| i % rooms)?;
    let fleet = Fleet::spawn(target, specs, &shared, &gate);
    wait_ready(&shared, clients, limit).await?;
    Ok((shared, fleet))
}

/// Waits until `count` clients of `shared` are ready.
pub async fn wait_ready(
    shared: &Shared,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    wait_for(
        shared,
        &format!("{count} clients to connect"),
        limit,
        || shared.ready.load(Ordering::Relaxed) >= count,
    )
    .await
}

/// Waits until `count` in-order deliveries have been counted.
pub async fn wait_delivered(
    shared: &Shared,
    count: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    wait_for(shared, &format!("{count} deliveries"), limit, || {
        shared.delivered.load(Ordering::Relaxed) >= count
    })
    .await
}

/// Fails loudly unless every client ended at the head of every photo room it was in, and no
/// client recorded a failure (a repeat, a gap, a refusal, a lost connection).
pub fn check_exactly_once(
    shared: &Shared,
    ends: &[ClientEnd],
    publisher: &Publisher,
) -> anyhow::Result<()> {
    let mut short = Vec::new();
    for end in ends {
        for (room, last) in &end.rooms {
            let head = publisher.head(room);
            if room.starts_with("photo:") && *last != head {
                short.push(format!(
                    "{} ended {room} at seq {last}, head {head}",
                    end.name
                ));
            }
        }
    }
    let (failures, first) = shared.failures();
    if failures == 0 && short.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "EXACTLY-ONCE IN ORDER VIOLATED: {failures} client failures, {} clients short of the head",
        short.len()
    );
    for line in first.iter().chain(short.iter()).take(20) {
        message.push_str("\n  ");
        message.push_str(line);
    }
    bail!(message)
}

/// CPU of the server (if known) and of the tool between two pairs of samples.
pub struct Window {
    server: Option<CpuSample>,
    tool: CpuSample,
}

impl Window {
    /// Starts a window now.
    pub fn start(target: &Target) -> anyhow::Result<Self> {
        Ok(Self {
            server: target.cpu()?,
            tool: CpuSample::take(Proc::Own)?,
        })
    }

    /// Ends it now: (server, tool).
    pub fn end(&self, target: &Target) -> anyhow::Result<(Option<CpuUse>, CpuUse)> {
        let server = match (&self.server, target.cpu()?) {
            (Some(start), Some(end)) => Some(start.until(&end)),
            _ => None,
        };
        let tool = self.tool.until(&CpuSample::take(Proc::Own)?);
        Ok((server, tool))
    }
}
