//! The application layer: the use cases the CLI and the HTTP API call.
//!
//! Front ends parse their input, call one function here and present the result; what a use
//! case does (which bytes an export holds, how a bundle is signed and packaged, which error
//! kind a failure is) is decided once, here, on top of the domain crates.
//!
//! - [`setup`]: a new installation: data directory, configuration, keys, first administrator.
//! - [`runtime`]: the recording runtime (recovery, recorders, ledgers, retention).
//! - [`export`]: MP4 export, evidence-bundle export and its tar packaging for download.
//! - [`verify`]: verifying a camera's recordings or an exported bundle.
//! - [`alarms`]: rules run on the event bus, alarms (acknowledge, close) and bookmarks.
//! - [`events`]: Vigil's own events (the audit log's entries, streams losing their camera).
//! - [`locks`]: evidence locks: ranges retention keeps, each step a signed ledger fact.
//! - [`archive`]: the archive tier's pass in `vigil serve` and bringing archived video back
//!   (checked against the ledger) before it is read.
//! - [`layout`]: each user's live-view layout (grid kind, camera per tile), checked against
//!   the recording index and the user's camera scope.
//! - [`settings`]: runtime settings: stage, restore, factory defaults, apply without a
//!   process restart.
//! - [`access_settings`]: the `[access]` section of `vigil.toml` as the access library's
//!   settings and alert sinks.
//! - [`audit`]: who runs the command line, and the audit trail use cases record their
//!   entries in.
//! - [`cameras`]: camera administration from the command line, audited.
//! - [`onvif`]: ONVIF cameras: discovery, and adding a camera from its device.
//! - [`rotation`]: camera password rotation (proven before kept, crash-safe), its schedule
//!   and the resolution of rotations a crash interrupted.
//! - [`device_check`]: device allow-listing: the device at a camera's ONVIF address checked
//!   against its recorded identity before each connection, and accepting a replaced one.
//! - [`backup`]: backup of an installation (databases, configuration, keys, ledgers) into
//!   one passphrase-encrypted file, and its restore into a new data directory.
//! - [`cluster`]: recording servers under a management server: enrolment tokens, the server
//!   list and removal, the inter-server service and a recording server's heartbeats.
//! - [`error`]: the error kinds every use case's errors map into.

pub mod access_settings;
pub mod alarms;
pub mod analytics;
pub mod archive;
pub mod assignments;
pub mod audit;
pub mod backup;
pub mod camera_cas;
pub mod camera_certificate;
pub mod camera_password;
pub mod cameras;
pub mod certificates;
pub mod cluster;
pub mod database;
pub mod device_check;
pub mod error;
pub mod events;
pub mod export;
pub mod handover;
pub mod layout;
pub mod locks;
pub mod mail;
pub mod metrics;
pub mod onvif;
pub mod remote_video;
pub mod rotation;
pub mod runtime;
pub mod settings;
pub mod setup;
pub mod verify;

pub use error::{Classified, ErrorKind};
