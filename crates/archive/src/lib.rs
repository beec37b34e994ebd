//! vigil-archive: the archive tier (docs/design/archive.md).
//!
//! Closed segments older than `[archive] after` move, with the excerpt of the evidence ledger
//! that signs them, to an S3-compatible object store:
//!
//! * [`Archiver`]: one pass uploads each due segment and its excerpt, puts them under S3
//!   Object Lock (compliance mode) long enough to cover the configured days and every
//!   evidence lock over them, reads the object back and checks every byte against the hashes
//!   the ledger signed, marks the segment archived in the index, and only then deletes the
//!   local file. [`Archiver::restore`] brings an archived segment back, checked the same way,
//!   so playback, export and verification read it like any other.
//! * [`ObjectArchive`]: the seam between that logic and a store. [`S3Archive`] talks to a
//!   real one (`object_store` for objects, presigned requests for Object Lock);
//!   [`MemoryArchive`] keeps objects in `object_store`'s `InMemory` and enforces compliance
//!   retention the way S3 does, for tests.
//! * [`Credentials`]: the access key pair, read from a file of mode 0600 and never shown.
//! * [`evidence`]: what the ledger signed for one segment, and the check of bytes against it.

mod archiver;
mod credentials;
pub mod evidence;
mod memory;
mod s3;
mod store;

pub use archiver::{
    ArchiveFailure, ArchiveReport, ArchiveSettings, ArchiveStep, Archiver, RESTORED_KEEP, StepHook,
    object_keys, restore_range, restore_segment,
};
pub use credentials::{Credentials, CredentialsError};
pub use memory::MemoryArchive;
pub use s3::{S3Archive, S3Error};
pub use store::{ObjectArchive, ObjectError};
