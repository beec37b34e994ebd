//! Each user's live-view layout: the grid kind and which camera is in which tile, kept on the
//! server so that it follows the user to any browser. Small and validated before it is stored:
//! a known kind, at most as many tiles as the kind has (16 at most), camera names of at most
//! 128 characters without control characters. Whether the cameras exist and whether the user
//! may see them is the application layer's business (it knows the recording index); this
//! module only stores what it was given and audits changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vigil_db::{OptionalExtension as _, params};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::Timestamp;
use crate::users::validate_camera;
use crate::{Access, AccessError, Actor};

/// The grid of the live page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LayoutKind {
    /// One camera.
    #[serde(rename = "1")]
    Single,
    /// 2 × 2.
    #[serde(rename = "2x2")]
    Grid2x2,
    /// 3 × 3.
    #[serde(rename = "3x3")]
    Grid3x3,
    /// 4 × 4.
    #[serde(rename = "4x4")]
    Grid4x4,
    /// One large tile and five small ones.
    #[serde(rename = "1+5")]
    OnePlusFive,
}

/// The most tiles any layout has.
pub const MAX_LAYOUT_TILES: usize = 16;

impl LayoutKind {
    pub const ALL: [LayoutKind; 5] = [
        LayoutKind::Single,
        LayoutKind::Grid2x2,
        LayoutKind::Grid3x3,
        LayoutKind::Grid4x4,
        LayoutKind::OnePlusFive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LayoutKind::Single => "1",
            LayoutKind::Grid2x2 => "2x2",
            LayoutKind::Grid3x3 => "3x3",
            LayoutKind::Grid4x4 => "4x4",
            LayoutKind::OnePlusFive => "1+5",
        }
    }

    /// How many tiles the layout shows.
    pub fn tiles(self) -> usize {
        match self {
            LayoutKind::Single => 1,
            LayoutKind::Grid2x2 => 4,
            LayoutKind::Grid3x3 => 9,
            LayoutKind::Grid4x4 => 16,
            LayoutKind::OnePlusFive => 6,
        }
    }
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown layout kind {0:?}; use one of 1, 2x2, 3x3, 4x4, 1+5")]
pub struct UnknownLayoutKind(pub String);

impl FromStr for LayoutKind {
    type Err = UnknownLayoutKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LayoutKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownLayoutKind(s.chars().take(16).collect()))
    }
}

/// A live-view layout: the kind and, per tile in order, its camera (`None`: an empty tile).
/// Fewer tiles than the kind has leave the rest to the client (it fills them with the other
/// cameras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveLayout {
    pub kind: LayoutKind,
    pub tiles: Vec<Option<String>>,
}

impl Default for LiveLayout {
    /// What a user who never saved a layout sees: a 2 × 2 grid the client fills in.
    fn default() -> Self {
        LiveLayout {
            kind: LayoutKind::Grid2x2,
            tiles: Vec::new(),
        }
    }
}

impl LiveLayout {
    /// At most as many tiles as the kind has, names of 1 to 128 characters without control
    /// characters (the recording index's own, stricter rule is the application layer's).
    pub fn validate(&self) -> Result<(), AccessError> {
        if self.tiles.len() > self.kind.tiles() {
            return Err(AccessError::InvalidLayout(format!(
                "layout {} has {} tiles, {} were given",
                self.kind,
                self.kind.tiles(),
                self.tiles.len()
            )));
        }
        for cam in self.tiles.iter().flatten() {
            validate_camera(cam)?;
        }
        Ok(())
    }
}

/// A stored layout and when it was last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedLayout {
    pub layout: LiveLayout,
    pub updated: Timestamp,
}

impl Access {
    /// The user's saved layout, or `None` when they never saved one. A stored value this
    /// version cannot read (written by hand) counts as none, so the live page still opens.
    pub fn live_layout(&self, username: &str) -> Result<Option<SavedLayout>, AccessError> {
        let row: Option<(String, i64)> = self
            .conn()
            .query_row(
                "SELECT l.layout, l.updated_ms FROM user_layouts l
                 JOIN users u ON u.id = l.user_id WHERE u.username = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(
            |(json, ms)| match serde_json::from_str::<LiveLayout>(&json) {
                Ok(layout) if layout.validate().is_ok() => Some(SavedLayout {
                    layout,
                    updated: Timestamp::from_unix_ms(ms),
                }),
                _ => {
                    tracing::warn!(username, "ignoring an unreadable stored live layout");
                    None
                }
            },
        ))
    }

    /// Stores the user's layout (validated first) and audits it as `layout_changed` when it
    /// differs from the stored one. Returns what is stored now.
    pub fn set_live_layout(
        &self,
        username: &str,
        layout: &LiveLayout,
        actor: &Actor,
    ) -> Result<SavedLayout, AccessError> {
        layout.validate()?;
        let json = serde_json::to_string(layout).map_err(|e| AccessError::Json(e.to_string()))?;
        let now = self.clock.now();
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let id: i64 = tx
                .query_row(
                    "SELECT id FROM users WHERE username = ?1",
                    [username],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))?;
            let old: Option<(String, i64)> = tx
                .query_row(
                    "SELECT layout, updated_ms FROM user_layouts WHERE user_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            // The same layout again (a client saving what it loaded) changes nothing.
            if let Some((_, ms)) = old.filter(|(old, _)| *old == json) {
                return Ok(SavedLayout {
                    layout: layout.clone(),
                    updated: Timestamp::from_unix_ms(ms),
                });
            }
            tx.execute(
                "INSERT INTO user_layouts (user_id, layout, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET layout = ?2, updated_ms = ?3",
                params![id, json, now.unix_ms()],
            )?;
            tx.commit()?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::LayoutChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({
                "username": username,
                "kind": layout.kind,
                "tiles": layout.tiles,
            })),
        )?;
        Ok(SavedLayout {
            layout: layout.clone(),
            updated: now,
        })
    }
}
