//! Storage-format migrations, numbered and append-only: never edit or renumber a released one;
//! add the next number instead. Each file holds one step; `ALL` lists them in order.

use super::Migration;

#[path = "0001_initial_layout.rs"]
mod m0001_initial_layout;
#[path = "0002_event_id_index.rs"]
mod m0002_event_id_index;
#[path = "0003_id_index_in_memory.rs"]
mod m0003_id_index_in_memory;
#[path = "0004_id_index_on_disk.rs"]
mod m0004_id_index_on_disk;
#[path = "0005_store_time.rs"]
mod m0005_store_time;
#[path = "0006_event_blocks.rs"]
mod m0006_event_blocks;
#[path = "0007_id_runs.rs"]
mod m0007_id_runs;
#[path = "0008_packed_blocks.rs"]
mod m0008_packed_blocks;

/// Every migration, in order.
pub(super) const ALL: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial_layout",
        apply: m0001_initial_layout::apply,
    },
    Migration {
        version: 2,
        name: "event_id_index",
        apply: m0002_event_id_index::apply,
    },
    Migration {
        version: 3,
        name: "id_index_in_memory",
        apply: m0003_id_index_in_memory::apply,
    },
    Migration {
        version: 4,
        name: "id_index_on_disk",
        apply: m0004_id_index_on_disk::apply,
    },
    Migration {
        version: 5,
        name: "store_time",
        apply: m0005_store_time::apply,
    },
    Migration {
        version: 6,
        name: "event_blocks",
        apply: m0006_event_blocks::apply,
    },
    Migration {
        version: 7,
        name: "id_runs",
        apply: m0007_id_runs::apply,
    },
    Migration {
        version: 8,
        name: "packed_blocks",
        apply: m0008_packed_blocks::apply,
    },
];
