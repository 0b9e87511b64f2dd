//! Ingest: the one path by which events enter the hub, whether producers sent them over HTTP
//! (`POST /api/events`) or NATS, or the hub made them (photo uploads and processing). It validates
//! a batch (all or nothing), stores the stored kinds in one durable append, and hands the
//! live-only kinds (`system.health` to everyone, and the hub's own notices to one room, such as
//! `photo.upload.failed` to `user:<id>`) to whoever listens with [`Ingest::live_events`] (the
//! realtime side), in order, without storing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::domain::{DomainError, Event, EventId, EventInput, Room, Timestamp};
use crate::store::{AppendError, ConsumedPosition, EventLog};

/// Live-only events that may wait for the realtime side before the oldest are dropped.
const LIVE_QUEUE: usize = 1024;

/// Why a batch was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The event at `index` is malformed.
    #[error("event {index}")]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// What is wrong.
        #[source]
        source: DomainError,
    },
    /// The event at `index` has `data` nested deeper than the limit.
    #[error(
        "event {index}: data is nested {depth} levels deep, more than the limit of {limit} (--max-json-depth)"
    )]
    TooDeep {
        /// Position in the batch.
        index: usize,
        /// Its depth (at least `limit + 1`; counting stops there).
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Where one ingested event went.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Its id.
    pub event_id: EventId,
    /// Rooms and seqs (empty for a live-only event).
    pub rooms: Vec<(Room, u64)>,
    /// True when the id was already stored: nothing was written and `rooms` repeats the stored
    /// rooms and seqs.
    pub duplicate: bool,
}

/// A live-only event: emitted to the sockets of `room` as it is now, never stored, without a seq.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// The event name the sockets receive.
    pub name: &'static str,
    /// Who receives it: the sockets subscribed to this room (`global`: every socket).
    pub room: Room,
    /// Its id (`eventId` on the wire).
    pub id: EventId,
    /// Its data, as JSON object text.
    pub data: Arc<str>,
    /// When it happened.
    pub timestamp: Timestamp,
}

impl LiveEvent {
    /// A producer's live-only event (`system.health`): for every socket.
    fn broadcast(event: Event) -> Self {
        Self {
            name: event.event_type.as_str(),
            room: Room::Global,
            id: event.id,
            data: event.data_json,
            timestamp: event.timestamp,
        }
    }
}

/// Validates, stores, and passes live-only events on. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    log: EventLog,
    max_json_depth: usize,
    live: broadcast::Sender<Arc<LiveEvent>>,
    closing: Arc<AtomicBool>,
}

impl Ingest {
    /// An ingest path storing into `log`.
    pub fn new(log: EventLog) -> Self {
        Self {
            log,
            max_json_depth: crate::settings::DEFAULT_MAX_JSON_DEPTH,
            live: broadcast::channel(LIVE_QUEUE).0,
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Refuses events whose `data` nests deeper than `limit`.
    pub fn with_max_json_depth(mut self, limit: usize) -> Self {
        self.max_json_depth = limit;
        self
    }

    /// The deepest nesting of `data` it accepts.
    pub fn max_json_depth(&self) -> usize {
        self.max_json_depth
    }

    /// The event log it stores into.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Every live-only event accepted from now on, in order. A receiver that falls more than
    /// [`LIVE_QUEUE`] events behind loses the oldest (live-only events are not kept anyway).
    pub fn live_events(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Passes on a live-only notice of the hub's own (such as `photo.upload.failed`) to the
    /// sockets of `room`; it is not stored.
    pub fn notify(&self, name: &'static str, room: Room, data: Map<String, Value>) {
        self.pass_on(LiveEvent {
            name,
            room,
            id: EventId::generate(),
            data: Arc::from(Value::Object(data).to_string()),
            timestamp: Timestamp::now(),
        });
    }

    fn pass_on(&self, event: LiveEvent) {
        if !self.closing.load(Ordering::SeqCst) {
            // No receiver (no realtime side yet) is not an error: live-only events are not kept.
            let _ = self.live.send(Arc::new(event));
        }
    }

    /// Stops passing live-only events on (the hub is shutting down).
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Validates every input first (all or nothing, `data` no deeper than the limit, timestamps
    /// defaulting to now), then
    /// [`accept`](Self::accept)s them.
    pub async fn ingest(&self, inputs: Vec<EventInput>) -> Result<Vec<Ingested>, IngestError> {
        let now = Timestamp::now();
        let events = inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| {
                if let Some(depth) = input.data_too_deep(self.max_json_depth) {
                    return Err(IngestError::TooDeep {
                        index,
                        depth,
                        limit: self.max_json_depth,
                    });
                }
                Event::from_input(input, now)
                    .map_err(|source| IngestError::Invalid { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.accept(events).await?)
    }

    /// Stores the stored kinds of `events` in one durable append, then passes the live-only
    /// ones on. If the store refuses one event (its index is that of `events`), nothing is
    /// stored or passed on. Answers one [`Ingested`] per event, in order.
    pub async fn accept(&self, events: Vec<Event>) -> Result<Vec<Ingested>, AppendError> {
        self.accept_with(events, None).await
    }

    /// [`accept`](Self::accept)s a batch read from a stream, recording `consumed` in the same
    /// durable append (see [`EventLog::append_consumed`]).
    pub async fn accept_consumed(
        &self,
        events: Vec<Event>,
        consumed: ConsumedPosition,
    ) -> Result<Vec<Ingested>, AppendError> {
        self.accept_with(events, Some(consumed)).await
    }

    async fn accept_with(
        &self,
        events: Vec<Event>,
        consumed: Option<ConsumedPosition>,
    ) -> Result<Vec<Ingested>, AppendError> {
        let mut out: Vec<Ingested> = events
            .iter()
            .map(|e| Ingested {
                event_id: e.id.clone(),
                rooms: Vec::new(),
                duplicate: false,
            })
            .collect();
        let mut stored_positions = Vec::with_capacity(events.len());
        let mut stored = Vec::with_capacity(events.len());
        let mut live = Vec::new();
        for (position, event) in events.into_iter().enumerate() {
            if event.event_type.is_stored() {
                stored_positions.push(position);
                stored.push(event);
            } else {
                live.push(event);
            }
        }
        let appended = match consumed {
            Some(consumed) => self.log.append_consumed(stored, consumed).await,
            None => self.log.append(stored).await,
        };
        let receipts = appended.map_err(|e| match e {
            AppendError::Rejected { index, rejection } => AppendError::Rejected {
                index: stored_positions.get(index).copied().unwrap_or(index),
                rejection,
            },
            other => other,
        })?;
        for (position, receipt) in stored_positions.into_iter().zip(receipts) {
            if let Some(slot) = out.get_mut(position) {
                slot.rooms = receipt.rooms;
                slot.duplicate = receipt.duplicate;
            }
        }
        for event in live {
            self.pass_on(LiveEvent::broadcast(event));
        }
        Ok(out)
    }
}
