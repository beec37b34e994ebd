//! The seam between the archiver and an object store: the handful of operations the archive
//! tier needs, Object Lock included, which `object_store`'s own trait does not cover.

use std::future::Future;

use bytes::Bytes;

/// Why an object operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("object {key} does not exist in the archive")]
    NotFound { key: String },
    /// The store refused (Object Lock, permissions): what it said.
    #[error("the archive refused {action} of {key}: {why}")]
    Refused {
        action: &'static str,
        key: String,
        why: String,
    },
    #[error("the archive failed {action} of {key}: {why}")]
    Failed {
        action: &'static str,
        key: String,
        why: String,
    },
}

/// An object store holding the archive: objects by key, and their compliance retention.
/// Implementations must be usable from several tasks at once.
pub trait ObjectArchive: Send + Sync + 'static {
    /// Stores `data` under `key` (a new version where the bucket keeps versions); returns the
    /// version id when the store has one.
    fn put(
        &self,
        key: &str,
        data: Bytes,
    ) -> impl Future<Output = Result<Option<String>, ObjectError>> + Send;

    /// The current version's bytes.
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, ObjectError>> + Send;

    /// Deletes a version (`None`: the current object). Under a compliance retention that has
    /// not passed, the store refuses with [`ObjectError::Refused`].
    fn delete(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<(), ObjectError>> + Send;

    /// Puts the current version under compliance retention until `until_us` (Unix
    /// microseconds). A store only ever extends it: asking for an earlier date than it holds
    /// is refused.
    fn retain_until(
        &self,
        key: &str,
        until_us: i64,
    ) -> impl Future<Output = Result<(), ObjectError>> + Send;

    /// The compliance retention date the store holds for the current version, if any.
    fn retention(&self, key: &str)
    -> impl Future<Output = Result<Option<i64>, ObjectError>> + Send;
}
