//! Routing: which rooms an event is stored in and delivered to (docs/protocol.md, "Stored events").

use super::{EventType, PhotoId, Room, UserId};

/// The rooms an event of `event_type` goes to, for a photo event with `photo_id` owned by
/// `owner`. Pure: the caller resolves the owner from the store first.
///
/// `system.health` goes nowhere here: it is live-only and never stored.
pub fn rooms_for(
    event_type: EventType,
    photo_id: Option<&PhotoId>,
    owner: Option<&UserId>,
) -> Vec<Room> {
    let photo = photo_id.map(Room::photo);
    let user = owner.map(Room::user);
    match event_type {
        EventType::PhotoUploaded
        | EventType::ProcessingCompleted
        | EventType::ProcessingFailed
        | EventType::PhotoDeleted => photo.into_iter().chain(user).collect(),
        EventType::ProcessingStarted | EventType::ProcessingProgress => photo.into_iter().collect(),
        EventType::SystemMaintenance => vec![Room::Global],
        EventType::SystemHealth => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routing table of docs/protocol.md ("Stored events"), row by row.
    #[test]
    fn routing_table() {
        let p = PhotoId::parse("p1").expect("id");
        let u = UserId::parse("u1").expect("id");
        let both = vec![Room::photo(&p), Room::user(&u)];
        for t in [
            EventType::PhotoUploaded,
            EventType::ProcessingCompleted,
            EventType::ProcessingFailed,
            EventType::PhotoDeleted,
        ] {
            assert_eq!(rooms_for(t, Some(&p), Some(&u)), both, "{t}");
        }
        for t in [EventType::ProcessingStarted, EventType::ProcessingProgress] {
            assert_eq!(
                rooms_for(t, Some(&p), Some(&u)),
                vec![Room::photo(&p)],
                "{t}"
            );
        }
        assert_eq!(
            rooms_for(EventType::SystemMaintenance, None, None),
            vec![Room::Global]
        );
        assert!(rooms_for(EventType::SystemHealth, None, None).is_empty());
    }
}
