//! The live page's layout, kept per user on the server so that it follows the user to any
//! browser: the grid kind (1, 2×2, 3×3, 4×4, 1+5) and the camera of each tile.
//!
//! Only a signed-in user whose role has live view has one (an API token is nobody's layout).
//! A user reads and writes only their own: the front end passes the caller's principal, never a
//! user name from the request. Saving checks every camera: one outside the user's scope is
//! refused as any camera route refuses it (forbidden, whether it exists or not, so nothing is
//! learnt about other cameras), a name in scope that no camera has is refused as unknown.
//! Loading shows only cameras that exist and that the user may see now: a tile whose camera
//! was removed, or taken out of the user's scope since it was saved, comes back empty, so a
//! saved layout never reveals a camera.

use std::collections::BTreeSet;

use vigil_access::{
    Access, AccessError, Actor, Denied, LayoutKind, LiveLayout, Permission, Principal, Role,
    Timestamp, UnknownLayoutKind,
};
use vigil_media::store::{Store, StoreError, check_camera_name};

use crate::error::{Classified, ErrorKind};

/// A layout as a front end received it (the kind still a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutInput {
    pub kind: String,
    pub tiles: Vec<Option<String>>,
}

/// A user's layout as the live page gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutView {
    pub kind: LayoutKind,
    /// The camera of each tile in order, `None` for an empty tile; fewer entries than the kind
    /// has tiles leave the rest to the client.
    pub tiles: Vec<Option<String>>,
    /// When the user last saved it; `None`: never (this is the default layout).
    pub updated: Option<Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "only a signed-in user has a live layout; an API token has none (it is the web client's)"
    )]
    NotAUser,
    #[error("role {0} has no live view, so no live layout")]
    NoLiveView(Role),
    #[error("{0}")]
    Denied(#[from] Denied),
    #[error("{0}")]
    UnknownKind(#[from] UnknownLayoutKind),
    #[error("layout {kind} has {max} tiles; {given} were given")]
    TooManyTiles {
        kind: LayoutKind,
        max: usize,
        given: usize,
    },
    #[error("tile {tile}: {message}")]
    InvalidCameraName { tile: usize, message: String },
    #[error("tile {tile}: there is no camera named '{name}'")]
    UnknownCamera { tile: usize, name: String },
    #[error("{0}")]
    Access(#[from] AccessError),
    #[error("recording index: {0}")]
    Store(#[from] StoreError),
}

impl Classified for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayoutError::NotAUser | LayoutError::NoLiveView(_) | LayoutError::Denied(_) => {
                ErrorKind::Forbidden
            }
            LayoutError::UnknownKind(_)
            | LayoutError::TooManyTiles { .. }
            | LayoutError::InvalidCameraName { .. }
            | LayoutError::UnknownCamera { .. }
            | LayoutError::Access(AccessError::InvalidLayout(_) | AccessError::InvalidCamera(_)) => {
                ErrorKind::InvalidInput
            }
            LayoutError::Access(_) | LayoutError::Store(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            LayoutError::NotAUser => "session_required",
            LayoutError::NoLiveView(_) | LayoutError::Denied(_) => "forbidden",
            LayoutError::UnknownKind(_) | LayoutError::TooManyTiles { .. } => "invalid_layout",
            LayoutError::InvalidCameraName { .. } => "invalid_camera_name",
            LayoutError::UnknownCamera { .. } => "unknown_camera",
            LayoutError::Access(AccessError::InvalidLayout(_) | AccessError::InvalidCamera(_)) => {
                "invalid_layout"
            }
            LayoutError::Access(_) | LayoutError::Store(_) => "internal",
        }
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            LayoutError::Access(e) => Some(e),
            _ => None,
        }
    }
}

/// The user whose layout the caller may read and write: a signed-in user (not an API token)
/// whose role has live view. Front ends call this before they read a request body.
pub fn authorize(principal: &Principal) -> Result<&str, LayoutError> {
    let Principal::User { username, role, .. } = principal else {
        return Err(LayoutError::NotAUser);
    };
    if !role.grants(Permission::ViewLive) {
        return Err(LayoutError::NoLiveView(*role));
    }
    Ok(username)
}

/// The names of the cameras `principal` may watch live now.
fn visible_cameras(store: &Store, principal: &Principal) -> Result<BTreeSet<String>, LayoutError> {
    Ok(store
        .cameras()?
        .into_iter()
        .filter(|c| {
            principal
                .authorize(Permission::ViewLive, Some(&c.name))
                .is_ok()
        })
        .map(|c| c.name)
        .collect())
}

/// A camera name for a message: bounded, without control characters.
fn shown(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The caller's layout: what they saved, with every camera they may not see now (or that no
/// longer exists) shown as an empty tile; the default (2×2, the client fills it) when they never
/// saved one.
pub fn load(
    access: &Access,
    store: &Store,
    principal: &Principal,
) -> Result<LayoutView, LayoutError> {
    let username = authorize(principal)?;
    let Some(saved) = access.live_layout(username)? else {
        let default = LiveLayout::default();
        return Ok(LayoutView {
            kind: default.kind,
            tiles: default.tiles,
            updated: None,
        });
    };
    let visible = visible_cameras(store, principal)?;
    Ok(LayoutView {
        kind: saved.layout.kind,
        tiles: saved
            .layout
            .tiles
            .into_iter()
            .map(|t| t.filter(|name| visible.contains(name)))
            .collect(),
        updated: Some(saved.updated),
    })
}

/// Saves the caller's layout after checking it: a known kind, no more tiles than it has, and
/// every camera one the caller may watch live and that exists. A refused layout changes
/// nothing. A different layout is audited (`layout_changed`) as done by `actor`.
pub fn save(
    access: &Access,
    store: &Store,
    principal: &Principal,
    actor: &Actor,
    input: LayoutInput,
) -> Result<LayoutView, LayoutError> {
    let username = authorize(principal)?;
    let kind: LayoutKind = input.kind.parse()?;
    if input.tiles.len() > kind.tiles() {
        return Err(LayoutError::TooManyTiles {
            kind,
            max: kind.tiles(),
            given: input.tiles.len(),
        });
    }
    let visible = visible_cameras(store, principal)?;
    for (i, name) in input.tiles.iter().enumerate() {
        let Some(name) = name else { continue };
        let tile = i + 1;
        // Scope first: a camera outside it is refused alike whether it exists or not.
        principal.authorize(Permission::ViewLive, Some(name))?;
        check_camera_name(name).map_err(|e| LayoutError::InvalidCameraName {
            tile,
            message: match e {
                StoreError::InvalidCamera(m) => m,
                e => e.to_string(),
            },
        })?;
        if !visible.contains(name) {
            return Err(LayoutError::UnknownCamera {
                tile,
                name: shown(name),
            });
        }
    }
    let layout = LiveLayout {
        kind,
        tiles: input.tiles,
    };
    let saved = access.set_live_layout(username, &layout, actor)?;
    Ok(LayoutView {
        kind: saved.layout.kind,
        tiles: saved.layout.tiles,
        updated: Some(saved.updated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigil_access::{AccessConfig, CameraScope, ManualClock, NewUser, TracingSink};
    use vigil_media::store::NewCamera;

    struct Fixture {
        _dir: tempfile::TempDir,
        access: Access,
        store: Store,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("data")).unwrap();
        for name in ["lobby", "gate", "dock"] {
            store
                .add_camera(&NewCamera {
                    name: name.into(),
                    url: format!("rtsp://10.0.0.1/{name}"),
                    username: None,
                    password: None,
                    max_age_secs: None,
                    max_bytes: None,
                    secondary: None,
                })
                .unwrap();
        }
        let access = Access::open_with(
            &dir.path().join("access.db"),
            AccessConfig::default(),
            Arc::new(ManualClock::new(Timestamp::from_unix_ms(1_790_000_000_000))),
            Arc::new(TracingSink),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            access,
            store,
        }
    }

    fn user(f: &Fixture, name: &str, role: Role, cameras: CameraScope) -> Principal {
        f.access
            .create_user(
                &NewUser {
                    username: name.into(),
                    role,
                    cameras: cameras.clone(),
                    password: Some("velvet-otter-tramline-42".into()),
                },
                &Actor::cli(),
            )
            .unwrap();
        Principal::User {
            username: name.into(),
            role,
            cameras,
        }
    }

    fn input(kind: &str, tiles: &[Option<&str>]) -> LayoutInput {
        LayoutInput {
            kind: kind.into(),
            tiles: tiles.iter().map(|t| t.map(str::to_owned)).collect(),
        }
    }

    fn actor(p: &Principal) -> Actor {
        Actor {
            name: p.audit_name(),
            source: "192.0.2.1".into(),
        }
    }

    #[test]
    fn a_saved_layout_shows_only_cameras_the_user_may_see_now() {
        let f = fixture();
        let ann = user(
            &f,
            "ann",
            Role::Viewer,
            CameraScope::only(["lobby", "gate"]),
        );
        let v = load(&f.access, &f.store, &ann).unwrap();
        assert_eq!(
            (v.kind, v.tiles.len(), v.updated),
            (LayoutKind::Grid2x2, 0, None)
        );
        let saved = save(
            &f.access,
            &f.store,
            &ann,
            &actor(&ann),
            input("1+5", &[Some("gate"), None, Some("lobby")]),
        )
        .unwrap();
        assert_eq!(saved.tiles, load(&f.access, &f.store, &ann).unwrap().tiles);
        // The admin narrows ann's scope and removes a camera: her layout hides both, without a
        // trace of which camera it was.
        let narrowed = Principal::User {
            username: "ann".into(),
            role: Role::Viewer,
            cameras: CameraScope::only(["lobby"]),
        };
        let v = load(&f.access, &f.store, &narrowed).unwrap();
        assert_eq!(v.kind, LayoutKind::OnePlusFive);
        assert_eq!(v.tiles, vec![None, None, Some("lobby".to_owned())]);
        let lobby = f.store.camera("lobby").unwrap();
        f.store.remove_camera(&lobby.id, false).unwrap();
        assert_eq!(
            load(&f.access, &f.store, &ann).unwrap().tiles,
            vec![Some("gate".to_owned()), None, None]
        );
    }

    #[test]
    fn cameras_out_of_scope_are_forbidden_alike_and_unknown_ones_refused() {
        let f = fixture();
        let ann = user(
            &f,
            "ann",
            Role::Viewer,
            CameraScope::only(["lobby", "ghost"]),
        );
        let admin = user(&f, "root", Role::Admin, CameraScope::All);
        let try_save = |p: &Principal, tiles: &[Option<&str>]| {
            save(&f.access, &f.store, p, &actor(p), input("3x3", tiles)).unwrap_err()
        };
        // "gate" exists, "nowhere" does not: ann cannot tell them apart.
        for cam in ["gate", "nowhere"] {
            let e = try_save(&ann, &[Some("lobby"), Some(cam)]);
            assert_eq!(
                (e.kind(), e.code()),
                (ErrorKind::Forbidden, "forbidden"),
                "{e}"
            );
        }
        // In scope but no such camera; and for an admin, who sees all.
        let e = try_save(&ann, &[Some("ghost")]);
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("unknown_camera", "tile 1: there is no camera named 'ghost'")
        );
        let e = try_save(&admin, &[None, Some("nowhere")]);
        assert_eq!(e.code(), "unknown_camera", "{e}");
        let e = try_save(&admin, &[Some("bad name")]);
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::InvalidInput, "invalid_camera_name"),
            "{e}"
        );
        let e = save(
            &f.access,
            &f.store,
            &admin,
            &actor(&admin),
            input("5x5", &[]),
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_layout", "{e}");
        let e = save(
            &f.access,
            &f.store,
            &admin,
            &actor(&admin),
            input("1", &[None, None]),
        )
        .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("invalid_layout", "layout 1 has 1 tiles; 2 were given")
        );
        assert!(f.access.live_layout("ann").unwrap().is_none());
        assert!(f.access.live_layout("root").unwrap().is_none());
    }

    #[test]
    fn tokens_and_roles_without_live_view_have_no_layout() {
        let f = fixture();
        let token = Principal::Token {
            token_id: "tok_x".into(),
            name: "integration".into(),
            role: Role::Admin,
            cameras: CameraScope::All,
        };
        let auditor = user(&f, "audrey", Role::Auditor, CameraScope::All);
        for p in [&token, &auditor] {
            let e = load(&f.access, &f.store, p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
            let e = save(&f.access, &f.store, p, &actor(p), input("1", &[])).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
        }
        assert_eq!(authorize(&token).unwrap_err().code(), "session_required");
    }
}
