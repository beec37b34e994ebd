//! vigil-events: what happens, as one kind of record for every producer.
//!
//! - [`model`] is the event (time, source, kind, category, severity, message, camera,
//!   attributes) and the checks every event passes, whoever sent it.
//! - [`store`] keeps events in their own SQLite database with retention, and answers queries
//!   with filters and paging.
//! - [`bus`] is how events enter: one writer thread stores them in batches, then pushes each
//!   stored event to live subscribers.
//! - [`alarms`] and [`bookmarks`] are what rules make of events, stored beside them.
//! - [`nonces`] remembers the nonces of signed event posts (replays refused across restarts).
//!
//! The wire and storage formats are in docs/events.md.

pub mod alarms;
pub mod bookmarks;
pub mod bus;
pub mod model;
pub mod nonces;
pub mod store;

pub use alarms::{
    Alarm, AlarmError, AlarmPage, AlarmQuery, AlarmState, AlarmStep, AlarmStore, Raise, Raised,
};
pub use bookmarks::{
    Bookmark, BookmarkError, BookmarkPage, BookmarkQuery, BookmarkStore, Creator, NewBookmark,
};
pub use bus::{BusStats, EventBus, Live, Subscription};
pub use model::{Category, Event, EventError, NewEvent, Severity, Source, SourceKind};
pub use store::{EventQuery, EventStore, Page, StoreError};
