//! Event types and validated events (docs/protocol.md, "Stored events").

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::data_text;
use super::{DomainError, EventId, PhotoId, Timestamp, UserId};

/// Largest accepted event `data`, as compact JSON text.
pub const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// The known event types. Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `photo.uploaded`
    PhotoUploaded,
    /// `photo.processing.started`
    ProcessingStarted,
    /// `photo.processing.progress`
    ProcessingProgress,
    /// `photo.processing.completed`
    ProcessingCompleted,
    /// `photo.processing.failed`
    ProcessingFailed,
    /// `photo.deleted`
    PhotoDeleted,
    /// `system.maintenance` (stored in `global`)
    SystemMaintenance,
    /// `system.health` (live only, never stored)
    SystemHealth,
}

impl EventType {
    /// Every known type.
    pub const ALL: [EventType; 8] = [
        EventType::PhotoUploaded,
        EventType::ProcessingStarted,
        EventType::ProcessingProgress,
        EventType::ProcessingCompleted,
        EventType::ProcessingFailed,
        EventType::PhotoDeleted,
        EventType::SystemMaintenance,
        EventType::SystemHealth,
    ];

    /// The wire name, which is also the NATS subject.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PhotoUploaded => "photo.uploaded",
            EventType::ProcessingStarted => "photo.processing.started",
            EventType::ProcessingProgress => "photo.processing.progress",
            EventType::ProcessingCompleted => "photo.processing.completed",
            EventType::ProcessingFailed => "photo.processing.failed",
            EventType::PhotoDeleted => "photo.deleted",
            EventType::SystemMaintenance => "system.maintenance",
            EventType::SystemHealth => "system.health",
        }
    }

    /// Stable one-byte code used in stored records. Never renumber.
    pub fn code(self) -> u8 {
        match self {
            EventType::PhotoUploaded => 1,
            EventType::ProcessingStarted => 2,
            EventType::ProcessingProgress => 3,
            EventType::ProcessingCompleted => 4,
            EventType::ProcessingFailed => 5,
            EventType::PhotoDeleted => 6,
            EventType::SystemMaintenance => 7,
            EventType::SystemHealth => 8,
        }
    }

    /// The type stored under `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Whether events of this type are about one photo (and need a `photoId`).
    pub fn is_photo_event(self) -> bool {
        !matches!(self, EventType::SystemMaintenance | EventType::SystemHealth)
    }

    /// Whether events of this type are stored (all but `system.health`).
    pub fn is_stored(self) -> bool {
        self != EventType::SystemHealth
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| DomainError::UnknownEventType(s.chars().take(100).collect()))
    }
}

/// An event as a producer sends it: `{ id?, type, data, timestamp? }`, not yet validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The producer's idempotency key.
    #[serde(default)]
    pub id: Option<String>,
    /// The event type (NATS: defaults to the subject).
    #[serde(rename = "type", default)]
    pub event_type: Option<String>,
    /// The event's data, an object, as the JSON text it arrived as (no tree is built).
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    /// When it happened, RFC 3339.
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl EventInput {
    /// How deeply its `data` nests when that is deeper than `limit` (HTTP and NATS ingest refuse
    /// such an event); `None` when it is not, or has no data.
    pub fn data_too_deep(&self, limit: usize) -> Option<usize> {
        data_text::too_deep(self.data.as_ref()?.get(), limit)
    }

    /// An event the hub produces itself: its id, type and data, timestamped when it is stored.
    /// (A `Value` always serializes; were it not to, the event would have no data and be refused
    /// for what it lacks.)
    pub fn produced(id: String, event_type: EventType, data: Value) -> Self {
        Self {
            id: Some(id),
            event_type: Some(event_type.as_str().to_owned()),
            data: serde_json::value::to_raw_value(&data).ok(),
            timestamp: None,
        }
    }
}

/// A validated event, ready to be routed and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id (`eventId` on the wire).
    pub id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// Its data: a JSON object as text, as the producer sent it without whitespace between
    /// tokens (its size is checked on it, and the store keeps and delivers it).
    pub data_json: Arc<str>,
    /// The producer's timestamp, else the time the hub accepted it.
    pub timestamp: Timestamp,
    /// `data.photoId`, present for every photo event (never set for `system.*` events).
    pub photo_id: Option<PhotoId>,
    /// `data.userId`, when given on a photo event (never set for `system.*` events).
    pub user_id: Option<UserId>,
    /// `data.progress` (0 to 100), when given on a processing event.
    pub progress: Option<u8>,
    /// `data.error`, when given on a `photo.processing.failed`.
    pub error: Option<String>,
    /// Whether the hub made `id` for this event, so that the store neither looks it up before
    /// storing the event nor indexes it: 128 random bits generated just now (cannot be stored
    /// yet), or a JetStream message's stream position (whose redeliveries the NATS consumer
    /// recognises by the consumed position it records with the events).
    pub id_generated: bool,
}

impl Event {
    /// Validates a producer's event. `now` is used when it has no timestamp; a missing `id` gets
    /// a generated one.
    pub fn from_input(input: EventInput, now: Timestamp) -> Result<Self, DomainError> {
        let type_name = input.event_type.ok_or(DomainError::MissingField("type"))?;
        let event_type: EventType = type_name.parse()?;
        let (id, id_generated) = match input.id {
            Some(id) => (EventId::parse(&id)?, false),
            None => (EventId::generate(), true),
        };
        let timestamp = match input.timestamp {
            Some(ts) => Timestamp::parse_rfc3339(&ts)?,
            None => now,
        };
        let data_json = match input.data {
            None => "{}".to_owned(),
            Some(raw) => {
                let text = raw.get().trim_start();
                if text == "null" {
                    "{}".to_owned()
                } else if !text.starts_with('{') {
                    return Err(DomainError::InvalidField {
                        field: "data",
                        reason: "must be an object".into(),
                    });
                } else {
                    let leading = raw.get().len() - text.len();
                    match data_text::compact(text) {
                        Cow::Owned(compacted) => compacted,
                        // Already compact (as most producers send): the parsed text's own
                        // buffer, not a copy of it (`from_json` copies it once, into the event's
                        // shared text).
                        Cow::Borrowed(_) => {
                            let mut arrived = String::from(Box::<str>::from(raw));
                            arrived.drain(..leading);
                            arrived
                        }
                    }
                }
            }
        };
        let mut event = Self::from_json(id, event_type, data_json, timestamp)?;
        event.id_generated = id_generated;
        Ok(event)
    }

    /// Validates the parts of an event whose data is a JSON object (docs/protocol.md, "Stored
    /// events").
    pub fn new(
        id: EventId,
        event_type: EventType,
        data: Map<String, Value>,
        timestamp: Timestamp,
    ) -> Result<Self, DomainError> {
        let data_json = serde_json::to_string(&data).map_err(|e| DomainError::InvalidField {
            field: "data",
            reason: e.to_string(),
        })?;
        Self::from_json(id, event_type, data_json, timestamp)
    }

    /// Validates the parts of an event whose data is `data_json`: the text of a JSON object, with
    /// no whitespace between tokens (see `data_text`). Reads only the fields the hub uses.
    pub fn from_json(
        id: EventId,
        event_type: EventType,
        data_json: String,
        timestamp: Timestamp,
    ) -> Result<Self, DomainError> {
        let size = data_json.len();
        if size > MAX_EVENT_DATA_BYTES {
            return Err(DomainError::TooLarge {
                size,
                limit: MAX_EVENT_DATA_BYTES,
            });
        }
        // One JSON object, checked here for every event: delivery copies this text into its
        // packets as it is (a struct also deserializes from an array, so the brace is checked).
        if !data_json.starts_with('{') {
            return Err(DomainError::InvalidField {
                field: "data",
                reason: "must be an object".into(),
            });
        }
        let fields: DataFields<'_> =
            serde_json::from_str(&data_json).map_err(|e| DomainError::InvalidField {
                field: "data",
                reason: e.to_string(),
            })?;
        // A `system.*` event may mention a photo or a user in its data, but it is about neither:
        // it never routes to their rooms, sets an owner or changes a status.
        let (photo_id, user_id) = if event_type.is_photo_event() {
            (
                fields
                    .photo_id
                    .into_text("photoId")?
                    .map(|id| PhotoId::parse(&id))
                    .transpose()?,
                fields
                    .user_id
                    .into_text("userId")?
                    .map(|id| UserId::parse(&id))
                    .transpose()?,
            )
        } else {
            (None, None)
        };
        if event_type.is_photo_event() && photo_id.is_none() {
            return Err(DomainError::MissingField("photoId"));
        }
        if event_type == EventType::PhotoUploaded && user_id.is_none() {
            return Err(DomainError::MissingField("userId"));
        }
        let progress = match event_type {
            EventType::ProcessingStarted | EventType::ProcessingProgress => {
                fields.progress.into_progress()?
            }
            _ => None,
        };
        let error = match event_type {
            EventType::ProcessingFailed => fields.error.into_text("error")?.map(Cow::into_owned),
            _ => None,
        };
        Ok(Self {
            id,
            event_type,
            data_json: Arc::from(data_json),
            timestamp,
            photo_id,
            user_id,
            progress,
            error,
            id_generated: false,
        })
    }
}

/// The fields of `data` the hub reads, each read as it is met in one pass over the text; the rest
/// is skipped, not built. A field given twice is refused (which of the two the producer meant is
/// unknown).
#[derive(Deserialize)]
struct DataFields<'a> {
    #[serde(rename = "photoId", borrow, default)]
    photo_id: Field<'a>,
    #[serde(rename = "userId", borrow, default)]
    user_id: Field<'a>,
    #[serde(borrow, default)]
    progress: Field<'a>,
    #[serde(borrow, default)]
    error: Field<'a>,
}

/// What a field of `data` holds, as far as the hub cares: absent or `null`, a string (borrowed
/// from the data text unless it has escapes), a number, or anything else (read to its end and
/// dropped).
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Null,
    Text(Cow<'a, str>),
    Number(f64),
    Other,
}

impl<'a> Field<'a> {
    /// The string (`None` when absent or null), or the field's error when it holds another kind
    /// of value.
    fn into_text(self, field: &'static str) -> Result<Option<Cow<'a, str>>, DomainError> {
        match self {
            Self::Null => Ok(None),
            Self::Text(text) => Ok(Some(text)),
            Self::Number(_) | Self::Other => Err(DomainError::InvalidField {
                field,
                reason: "must be a string".into(),
            }),
        }
    }

    /// `progress` as a whole percentage (`None` when absent or null).
    fn into_progress(self) -> Result<Option<u8>, DomainError> {
        match self {
            Self::Null => Ok(None),
            Self::Number(v) if (0.0..=100.0).contains(&v) => Ok(Some(v.round() as u8)),
            Self::Number(_) | Self::Text(_) | Self::Other => Err(DomainError::InvalidField {
                field: "progress",
                reason: "must be a number from 0 to 100".into(),
            }),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Reads any JSON value into a [`Field`].
struct FieldVisitor;

impl<'de> serde::de::Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }

    fn visit_none<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Field<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
        Ok(Field::Number(v as f64))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
        Ok(Field::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Field<'de>, E> {
        Ok(Field::Number(v))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Event, DomainError> {
        let input: EventInput = serde_json::from_value(v).expect("input shape");
        Event::from_input(input, Timestamp::from_millis(0))
    }

    /// Data text that is not one JSON object is refused by `from_json` itself (delivery copies
    /// the text into packets as it is); an array would otherwise pass as the fields' struct.
    #[test]
    fn from_json_takes_only_an_object() {
        let at = Timestamp::from_millis(0);
        let id = || EventId::parse("e1").expect("id");
        for data in ["[]", "[1]", "1", "\"x\"", "null"] {
            assert!(
                matches!(
                    Event::from_json(id(), EventType::SystemHealth, data.into(), at),
                    Err(DomainError::InvalidField { field: "data", .. })
                ),
                "{data}"
            );
        }
        assert!(Event::from_json(id(), EventType::SystemHealth, "{}".into(), at).is_ok());
    }

    /// Each rule of docs/protocol.md ("Stored events") about required data refuses what it should.
    #[test]
    fn validation_rules() {
        let ok = parse(json!({"type": "photo.uploaded", "data": {"photoId": "p", "userId": "u"}}));
        assert!(ok.is_ok());
        assert_eq!(
            parse(json!({"type": "photo.uploaded", "data": {"photoId": "p"}})),
            Err(DomainError::MissingField("userId"))
        );
        assert_eq!(
            parse(json!({"type": "photo.deleted", "data": {}})),
            Err(DomainError::MissingField("photoId"))
        );
        assert!(matches!(
            parse(json!({"type": "photo.exploded", "data": {"photoId": "p"}})),
            Err(DomainError::UnknownEventType(_))
        ));
        assert!(matches!(
            parse(
                json!({"type": "photo.processing.progress", "data": {"photoId": "p", "progress": 101}})
            ),
            Err(DomainError::InvalidField {
                field: "progress",
                ..
            })
        ));
        assert!(matches!(
            parse(json!({"type": "photo.processing.progress", "data": {"photoId": 7}})),
            Err(DomainError::InvalidField {
                field: "photoId",
                ..
            })
        ));
        assert!(matches!(
            parse(json!({"type": "system.maintenance", "data": [1]})),
            Err(DomainError::InvalidField { field: "data", .. })
        ));
        assert!(matches!(
            parse(
                json!({"type": "system.maintenance", "data": {"big": "x".repeat(MAX_EVENT_DATA_BYTES)}})
            ),
            Err(DomainError::TooLarge { .. })
        ));
        let maintenance = parse(json!({"type": "system.maintenance"})).expect("no data needed");
        assert!(maintenance.photo_id.is_none());
    }

    fn parse_text(body: &str) -> Result<Event, DomainError> {
        let input: EventInput = serde_json::from_str(body).expect("input shape");
        Event::from_input(input, Timestamp::from_millis(0))
    }

    /// `data` is kept as sent (field order, escapes) without the whitespace between tokens, and
    /// a field the hub reads may not be given twice.
    #[test]
    fn data_is_kept_as_sent_without_whitespace() {
        let event = parse_text(
            "{\"type\":\"photo.processing.failed\",\"data\":{ \"zeta\" : [1, 2],\r\n \"photoId\":\"p\", \"error\":\"caf\\u00e9 \\\"x\\\"\"}}",
        )
        .expect("valid");
        assert_eq!(
            &*event.data_json,
            r#"{"zeta":[1,2],"photoId":"p","error":"caf\u00e9 \"x\""}"#
        );
        assert_eq!(event.error.as_deref(), Some("café \"x\""));
        assert!(matches!(
            parse_text(r#"{"type":"photo.deleted","data":{"photoId":"p","photoId":"q"}}"#),
            Err(DomainError::InvalidField { field: "data", .. })
        ));
        let null = parse_text(r#"{"type":"system.maintenance","data":null}"#).expect("valid");
        assert_eq!(&*null.data_json, "{}");
        // Already compact (its parsed buffer reused), with whitespace before it.
        let compact = parse_text(
            "{\"type\":\"photo.deleted\",\"data\": \n\t{\"photoId\":\"p\",\"n\":[1,{}]} }",
        )
        .expect("valid");
        assert_eq!(&*compact.data_json, r#"{"photoId":"p","n":[1,{}]}"#);
    }

    use proptest::strategy::Strategy as _;

    /// A value of any kind for a field of `data`: strings with escapes, numbers in every JSON
    /// form, null, booleans, arrays and objects.
    fn field_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e3f64..1e3).prop_map(|n| json!(n)),
            (0u8..=120).prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What the JSON tree of `data` says a text field is (`Err` with the field's name when it
    /// holds another kind of value).
    fn tree_text(
        data: &Map<String, Value>,
        key: &'static str,
    ) -> Result<Option<String>, &'static str> {
        match data.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(key),
        }
    }

    /// The fields a photo event reads from `data`, from its JSON tree, with the rules of
    /// `from_json` in its order: the field that fails first, or (photo, user, progress, error).
    type Fields = (String, Option<String>, Option<u8>, Option<String>);
    fn tree_fields(data: &Map<String, Value>, failed: bool) -> Result<Fields, &'static str> {
        let photo = tree_text(data, "photoId")?;
        if photo
            .as_deref()
            .is_some_and(|id| PhotoId::parse(id).is_err())
        {
            return Err("photoId");
        }
        let user = tree_text(data, "userId")?;
        if user.as_deref().is_some_and(|id| UserId::parse(id).is_err()) {
            return Err("userId");
        }
        let photo = photo.ok_or("photoId")?;
        if failed {
            return Ok((photo, user, None, tree_text(data, "error")?));
        }
        let progress = match data.get("progress") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_f64()
                    .filter(|v| (0.0..=100.0).contains(v))
                    .map(|v| v.round() as u8)
                    .ok_or("progress")?,
            ),
            Some(_) => return Err("progress"),
        };
        Ok((photo, user, progress, None))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The fields read in one pass over the data text are those of its JSON tree, for
        /// values of every kind (a string with escapes, a number in any form, nested values),
        /// and so is every verdict on them.
        #[test]
        fn data_fields_read_in_one_pass_are_the_trees(
            photo in proptest::option::of(proptest::prop_oneof![
                4 => "[a-z0-9]{1,8}".prop_map(Value::String),
                1 => field_value(),
            ]),
            user in proptest::option::of(proptest::prop_oneof![
                4 => "[a-z0-9]{1,8}".prop_map(Value::String),
                1 => field_value(),
            ]),
            progress in proptest::option::of(field_value()),
            error in proptest::option::of(proptest::prop_oneof![
                3 => "[a-z\"\\\\\n\u{e9}\u{1F600}]{0,8}".prop_map(Value::String),
                1 => field_value(),
            ]),
            other in proptest::option::of(field_value()),
            failed in proptest::prelude::any::<bool>(),
        ) {
            let data: Map<String, Value> = [
                ("photoId", photo),
                ("userId", user),
                ("progress", progress),
                ("error", error),
                ("other", other),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            let text = Value::Object(data.clone()).to_string();
            let event_type = if failed { EventType::ProcessingFailed } else { EventType::ProcessingProgress };
            let at = Timestamp::from_millis(0);
            let got = Event::from_json(EventId::parse("e1").expect("id"), event_type, text, at)
                .map(|e| (
                    e.photo_id.map(|p| p.as_str().to_owned()).unwrap_or_default(),
                    e.user_id.map(|u| u.as_str().to_owned()),
                    e.progress,
                    e.error,
                ))
                .map_err(|e| match e {
                    DomainError::InvalidField { field, .. }
                    | DomainError::InvalidId { field, .. }
                    | DomainError::MissingField(field) => field,
                    other => panic!("{other:?}"),
                });
            proptest::prop_assert_eq!(got, tree_fields(&data, failed));
        }
    }

    /// Type codes are stable and unique.
    #[test]
    fn type_codes_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_code(t.code()), Some(t));
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
    }
}
