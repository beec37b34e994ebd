//! The nonces of signed event posts, kept beside the events so that a request captured before
//! a restart cannot be replayed after it (docs/events-in.md, "Signed webhooks").

use std::path::Path;

use rusqlite::{Connection, params};

use crate::store::{Db, StoreError};

/// The `nonces` table of `events.db`: (sender, nonce) and until when it is remembered.
#[derive(Debug)]
pub struct NonceStore {
    db: Db,
}

impl NonceStore {
    /// Opens (creating or migrating) `events.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(NonceStore { db: Db::open(dir)? })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock()
    }

    /// Every nonce still remembered at `now_s` (Unix seconds): sender, nonce, until.
    pub fn live(&self, now_s: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let err = self.db.err();
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT sender, nonce, until_s FROM nonces WHERE until_s >= ?1")
            .map_err(&err)?;
        stmt.query_map([now_s], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)
    }

    /// Records `nonce` of `sender` until `until_s`, forgetting those expired at `now_s`.
    /// `false` when it is already remembered (a replay).
    pub fn claim(
        &self,
        sender: &str,
        nonce: &str,
        until_s: i64,
        now_s: i64,
    ) -> Result<bool, StoreError> {
        let err = self.db.err();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute("DELETE FROM nonces WHERE until_s < ?1", [now_s])
            .map_err(&err)?;
        let added = tx
            .execute(
                "INSERT INTO nonces (sender, nonce, until_s) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (sender, nonce) DO NOTHING",
                params![sender, nonce, until_s],
            )
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(added == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_claimed_once_until_it_expires_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = NonceStore::open(dir.path()).unwrap();
        assert!(s.claim("cam-ai", "nonce-0000000001", 1600, 1000).unwrap());
        assert!(!s.claim("cam-ai", "nonce-0000000001", 1700, 1100).unwrap());
        assert!(s.claim("other", "nonce-0000000001", 1700, 1100).unwrap());
        drop(s);
        let s = NonceStore::open(dir.path()).unwrap();
        let mut live = s.live(1100).unwrap();
        live.sort();
        assert_eq!(
            live,
            vec![
                ("cam-ai".into(), "nonce-0000000001".into(), 1600),
                ("other".into(), "nonce-0000000001".into(), 1700)
            ]
        );
        assert!(!s.claim("cam-ai", "nonce-0000000001", 1700, 1200).unwrap());
        // Expired: forgotten, so it may be claimed again (its timestamp is stale by then).
        assert!(s.claim("cam-ai", "nonce-0000000001", 2300, 1601).unwrap());
        assert_eq!(s.live(1650).unwrap().len(), 2);
    }
}
