//! Ingest: validating producers' events, storing them durably, and delivering live-only ones.
//! The one path by which events enter the hub, whichever bus or endpoint they came from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use socketioxide::SocketIo;

use crate::domain::{DomainError, Event, EventInput, Room, Timestamp};
use crate::realtime::event_payload;
use crate::store::{AppendError, EventLog};

/// Why a batch was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The event at `index` is malformed.
    #[error("event {index}: {source}")]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// What is wrong.
        source: DomainError,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Where one ingested event went.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Its id.
    pub event_id: String,
    /// Rooms and seqs (empty for a live-only event).
    pub rooms: Vec<(Room, u64)>,
}

/// Validates, stores and (for live-only events) broadcasts.
#[derive(Clone)]
pub struct Ingest {
    log: EventLog,
    io: SocketIo,
    closing: Arc<AtomicBool>,
}

impl Ingest {
    /// An ingest path storing into `log` and broadcasting live-only events on `io`.
    pub fn new(log: EventLog, io: SocketIo) -> Self {
        Self {
            log,
            io,
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops live broadcasts (the Socket.IO server is closing).
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Validates every input first (all or nothing), then appends the stored ones in one
    /// durable append and broadcasts the live-only ones.
    pub async fn ingest(&self, inputs: Vec<EventInput>) -> Result<Vec<Ingested>, IngestError> {
        let now = Timestamp::now();
        let events = inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| {
                Event::from_input(input, now)
                    .map_err(|source| IngestError::Invalid { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (stored, live): (Vec<_>, Vec<_>) = events
            .iter()
            .cloned()
            .enumerate()
            .partition(|(_, e)| e.event_type.is_stored());
        let stored_positions: Vec<usize> = stored.iter().map(|(i, _)| *i).collect();
        let receipts = self
            .log
            .append(stored.into_iter().map(|(_, e)| e).collect())
            .await
            .map_err(|e| match e {
                AppendError::Rejected { index, rejection } => AppendError::Rejected {
                    index: stored_positions.get(index).copied().unwrap_or(index),
                    rejection,
                },
                other => other,
            })?;
        for (_, event) in &live {
            self.deliver_live(event);
        }
        let mut out: Vec<Ingested> = events
            .iter()
            .map(|e| Ingested {
                event_id: e.id.to_string(),
                rooms: Vec::new(),
            })
            .collect();
        for (position, receipt) in stored_positions.into_iter().zip(receipts) {
            if let Some(slot) = out.get_mut(position) {
                slot.rooms = receipt.rooms;
            }
        }
        Ok(out)
    }

    /// Broadcasts a live-only event (`system.health`) to `global`, without storing it. Does
    /// nothing once the Socket.IO server is closing.
    pub fn deliver_live(&self, event: &Event) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        let data = serde_json::to_string(&event.data).unwrap_or_else(|_| "{}".into());
        let payload = event_payload(&data, &event.id, "global", None, event.timestamp);
        let io = self.io.clone();
        let name = event.event_type.as_str();
        tokio::spawn(async move {
            if let Err(e) = io.emit(name, &*payload).await {
                tracing::debug!(error = %e, "live broadcast reached not every socket");
            }
        });
    }
}
