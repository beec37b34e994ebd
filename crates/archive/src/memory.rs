//! An archive in memory: objects in `object_store`'s `InMemory`, with compliance retention
//! enforced as S3 Object Lock does (no delete before the date, no shortening), so the
//! archiver's lock logic is tested without a server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::store::{ObjectArchive, ObjectError};

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// See the module documentation. Clones share the same objects.
#[derive(Clone)]
pub struct MemoryArchive {
    objects: Arc<InMemory>,
    retention: Arc<Mutex<HashMap<String, i64>>>,
    clock: Clock,
}

impl Default for MemoryArchive {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryArchive {
    /// An empty archive on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(vigil_media::store::now_us))
    }

    /// An empty archive whose retention dates are judged by `clock` (Unix microseconds).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            objects: Arc::new(InMemory::new()),
            retention: Arc::new(Mutex::new(HashMap::new())),
            clock,
        }
    }

    /// The keys stored, sorted.
    pub async fn keys(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let mut keys: Vec<String> = self
            .objects
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn retention_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.retention.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn failed(action: &'static str, key: &str, e: object_store::Error) -> ObjectError {
    match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound { key: key.into() },
        e => ObjectError::Failed {
            action,
            key: key.into(),
            why: e.to_string(),
        },
    }
}

impl ObjectArchive for MemoryArchive {
    async fn put(&self, key: &str, data: Bytes) -> Result<Option<String>, ObjectError> {
        let r = self
            .objects
            .put(&ObjectPath::from(key), PutPayload::from_bytes(data))
            .await
            .map_err(|e| failed("upload", key, e))?;
        Ok(r.version)
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let r = self
            .objects
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| failed("download", key, e))?;
        r.bytes().await.map_err(|e| failed("download", key, e))
    }

    async fn delete(&self, key: &str, _version: Option<&str>) -> Result<(), ObjectError> {
        if let Some(&until) = self.retention_map().get(key)
            && until > (self.clock)()
        {
            return Err(ObjectError::Refused {
                action: "deletion",
                key: key.into(),
                why: format!(
                    "Access Denied: object is under compliance retention until {}",
                    vigil_signing::fmt_time(until)
                ),
            });
        }
        self.objects
            .delete(&ObjectPath::from(key))
            .await
            .map_err(|e| failed("deletion", key, e))?;
        self.retention_map().remove(key);
        Ok(())
    }

    async fn retain_until(&self, key: &str, until_us: i64) -> Result<(), ObjectError> {
        self.objects
            .head(&ObjectPath::from(key))
            .await
            .map_err(|e| failed("retention", key, e))?;
        let mut map = self.retention_map();
        if let Some(&held) = map.get(key)
            && held > until_us
        {
            return Err(ObjectError::Refused {
                action: "retention",
                key: key.into(),
                why: format!(
                    "Access Denied: compliance retention until {} cannot be shortened",
                    vigil_signing::fmt_time(held)
                ),
            });
        }
        map.insert(key.to_owned(), until_us);
        Ok(())
    }

    async fn retention(&self, key: &str) -> Result<Option<i64>, ObjectError> {
        Ok(self.retention_map().get(key).copied())
    }
}
