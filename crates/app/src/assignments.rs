//! Cameras assigned to recording servers (docs/cluster.md "Assigning cameras",
//! docs/design/cluster.md "Assignments"): the management server's use cases (assign by name
//! or by load, unassign, the camera → server map the lists show), the full definitions it
//! hands each recording server over the mutual-TLS link, and the recording server's side that
//! writes them into its own store, where its runtime picks them up within seconds.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use vigil_access::AuditKind;
use vigil_cluster::member::Membership;
use vigil_cluster::protocol::{AssignedCamera, AssignedSecondary, Assignments};
use vigil_cluster::{AssignRefusal, Registry};
use vigil_config::Config;
use vigil_media::store::{NewCamera, NewSecondary, Store, StoreError, StreamMode};

use crate::audit::Trail;
use crate::cluster::OFFLINE_AFTER;
use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error(transparent)]
    Refused(#[from] AssignRefusal),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] vigil_cluster::Error),
    #[error("the assignment was made but not recorded in the audit log: {0}")]
    Audit(#[from] vigil_access::AccessError),
    #[error(
        "cameras are assigned on a management server: this server's role is {0} (set role = \"management\" in vigil.toml)"
    )]
    NotManagement(vigil_config::Role),
}

impl AssignError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AssignError::Refused(AssignRefusal::NoneOnline) => ErrorKind::Conflict,
            AssignError::Refused(_) => ErrorKind::InvalidInput,
            AssignError::Store(StoreError::NoSuchCamera(_)) => ErrorKind::NotFound,
            AssignError::NotManagement(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// Where a camera should be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// On the named recording server.
    Server(String),
    /// On the online server with the fewest cameras.
    Auto,
    /// Nowhere: the assignment ends (the management server records nothing itself).
    Unassigned,
}

/// A camera's assignment after a change.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignmentView {
    pub camera: String,
    /// The recording server that records it, `null` when unassigned.
    pub server: Option<String>,
    /// The server it had before, if any.
    pub previous: Option<String>,
}

/// Assigns (or unassigns) the camera `camera` (name or id); audited as a camera change.
pub fn assign(
    cfg: &Config,
    store: &Store,
    trail: &Trail<'_>,
    camera: &str,
    target: &Target,
) -> Result<AssignmentView, AssignError> {
    if cfg.role != vigil_config::Role::Management {
        return Err(AssignError::NotManagement(cfg.role));
    }
    let cam = store.camera(camera)?;
    let mut registry = Registry::open(&cfg.data_dir)?;
    let now = OffsetDateTime::now_utc();
    let previous = registry
        .assignments()?
        .into_iter()
        .find(|a| a.camera_id == cam.id)
        .map(|a| a.server);
    let server = match target {
        Target::Server(name) => Some(registry.assign(&cam.id, name, now)??.server),
        Target::Auto => Some(registry.assign_auto(&cam.id, now, OFFLINE_AFTER)??.server),
        Target::Unassigned => {
            registry.unassign(&cam.id)?;
            None
        }
    };
    trail.record(
        AuditKind::CameraChanged,
        serde_json::json!({
            "operation": if server.is_some() { "camera_assigned" } else { "camera_unassigned" },
            "camera": cam.name,
            "camera_id": cam.id,
            "server": server,
            "previous": previous,
            "automatic": *target == Target::Auto,
        }),
    )?;
    Ok(AssignmentView {
        camera: cam.name,
        server,
        previous,
    })
}

/// camera id → the server it is assigned to. Empty on a server without a registry.
pub fn by_camera(cfg: &Config) -> Result<HashMap<String, String>, AssignError> {
    if !cfg.data_dir.join(vigil_cluster::registry::FILE).exists() {
        return Ok(HashMap::new());
    }
    Ok(Registry::open(&cfg.data_dir)?
        .assignments()?
        .into_iter()
        .map(|a| (a.camera_id, a.server))
        .collect())
}

/// The full definitions of the cameras assigned to `server`, with their credentials
/// (decrypted from the management server's store for the mutual-TLS answer only). Cameras
/// removed on the management server lose their assignment here.
pub fn definitions(
    store: &Store,
    registry: &Registry,
    server: &str,
) -> Result<Vec<AssignedCamera>, AssignError> {
    let cameras = store.cameras()?;
    let ids: Vec<String> = cameras.iter().map(|c| c.id.clone()).collect();
    let gone = registry.retain_cameras(&ids)?;
    if gone > 0 {
        tracing::info!(
            assignments = gone,
            "assignments of removed cameras forgotten"
        );
    }
    let assigned: HashSet<String> = registry.assigned_to(server)?.into_iter().collect();
    let mut out = Vec::new();
    for cam in cameras.into_iter().filter(|c| assigned.contains(&c.id)) {
        let secondary = match &cam.secondary {
            Some(sec) => Some(AssignedSecondary {
                url: sec.url.clone(),
                username: sec.username.clone(),
                password: store.camera_password(&sec.id)?,
                mode: sec.mode.as_str().to_owned(),
            }),
            None => None,
        };
        out.push(AssignedCamera {
            password: store.camera_password(&cam.id)?,
            id: cam.id,
            name: cam.name,
            url: cam.url,
            username: cam.username,
            enabled: cam.enabled,
            max_age_secs: cam.max_age_secs,
            max_bytes: cam.max_bytes,
            tls_pin: cam.tls_pin,
            secondary,
        });
    }
    Ok(out)
}

/// The revision of a definition list: SHA-256 over a key of this process and the list, so
/// the revision (sent in every heartbeat answer) says nothing about the passwords in it.
pub fn revision(key: &[u8; 32], cameras: &[AssignedCamera]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(key);
    ctx.update(&serde_json::to_vec(cameras).unwrap_or_default());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What applying assignments did on a recording server.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    /// Assigned away or unassigned: disabled here, their recordings kept.
    pub stopped: Vec<String>,
    /// Cameras that could not be written, with the reason.
    pub refused: Vec<(String, String)>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.stopped.is_empty()
            && self.refused.is_empty()
    }
}

fn new_camera(c: &AssignedCamera) -> Result<NewCamera, String> {
    let secondary = match &c.secondary {
        Some(s) => Some(NewSecondary {
            url: s.url.clone(),
            username: s.username.clone(),
            password: s.password.clone(),
            mode: s.mode.parse::<StreamMode>().map_err(|e| e.to_string())?,
        }),
        None => None,
    };
    Ok(NewCamera {
        name: c.name.clone(),
        url: c.url.clone(),
        username: c.username.clone(),
        password: c.password.clone(),
        max_age_secs: c.max_age_secs,
        max_bytes: c.max_bytes,
        secondary,
    })
}

/// Writes the assignments into this recording server's store: assigned cameras are added or
/// updated under the management server's id (passwords sealed by this server's secret box),
/// cameras assigned here before and now missing are disabled (recording stops within the
/// runtime's next pass; the video stays). Cameras added on this server itself are left alone.
pub fn apply(store: &Store, data_dir: &Path, a: &Assignments) -> Applied {
    let mut out = Applied::default();
    let mut known: Vec<String> = Membership::assigned(data_dir);
    for c in &a.cameras {
        let new = match new_camera(c) {
            Ok(n) => n,
            Err(e) => {
                out.refused.push((c.name.clone(), e));
                continue;
            }
        };
        let existed = store.camera(&c.id).is_ok();
        if !existed && !known.contains(&c.id) && store.camera(&c.name).is_ok() {
            out.refused.push((
                c.name.clone(),
                "a camera of this name was added on this recording server itself; remove or rename it there".into(),
            ));
            continue;
        }
        match store.put_camera_with_id(&c.id, &new, c.enabled, c.tls_pin.as_deref()) {
            Ok((_, changed)) => {
                if !existed {
                    out.added.push(c.name.clone());
                } else if changed {
                    out.changed.push(c.name.clone());
                }
                if !known.contains(&c.id) {
                    known.push(c.id.clone());
                }
            }
            Err(e) => out.refused.push((c.name.clone(), e.to_string())),
        }
    }
    let now: HashSet<&str> = a.cameras.iter().map(|c| c.id.as_str()).collect();
    for id in known.iter().filter(|id| !now.contains(id.as_str())) {
        match store.camera(id) {
            Ok(cam) if cam.enabled => match store.set_camera_enabled(id, false) {
                Ok(()) => out.stopped.push(cam.name),
                Err(e) => out.refused.push((cam.name, e.to_string())),
            },
            _ => {}
        }
    }
    if let Err(e) = Membership::save_assigned(data_dir, &known) {
        tracing::warn!(error = %e, "cannot keep the list of assigned cameras");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_access::{Access, AccessConfig, AuditQuery};
    use vigil_cluster::registry::Issued;
    use vigil_config::Role;

    use super::*;
    use crate::audit::cli_actor;

    struct Site {
        _dir: tempfile::TempDir,
        cfg: Config,
        store: Store,
        access: Access,
    }

    fn site(role: Role) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::with_data_dir(dir.path().join("data"));
        cfg.role = role;
        let store = Store::init(&cfg.data_dir).unwrap();
        let access = Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap();
        Site {
            _dir: dir,
            cfg,
            store,
            access,
        }
    }

    fn camera(name: &str, password: Option<&str>) -> NewCamera {
        NewCamera {
            name: name.into(),
            url: format!("rtsp://127.0.0.1:8554/{name}"),
            username: password.map(|_| "viewer".into()),
            password: password.map(str::to_owned),
            max_age_secs: None,
            max_bytes: None,
            secondary: None,
        }
    }

    /// Joins `names` to the site's registry, each with a certificate of its own; those in
    /// `online` report now.
    fn join(s: &Site, names: &[&str], online: &[&str]) {
        let mut reg = Registry::open(&s.cfg.data_dir).unwrap();
        let now = OffsetDateTime::now_utc();
        for (i, n) in names.iter().enumerate() {
            let (token, _) = reg
                .create_token(n, Duration::from_secs(60), [1; 32], now)
                .unwrap();
            let der = vec![i as u8 + 1; 8];
            reg.enrol(&token, "127.0.0.1:1", now, |_| {
                Ok(Issued {
                    cert_pem: String::new(),
                    cert_der: der.clone(),
                    not_after: now + Duration::from_secs(3600),
                })
            })
            .unwrap()
            .unwrap();
            if online.contains(n) {
                let status = serde_json::json!({"version": "t"});
                reg.heartbeat(
                    &vigil_cluster::cert_sha256(&der),
                    "127.0.0.1:2",
                    &status,
                    now,
                )
                .unwrap()
                .unwrap();
            }
        }
    }

    fn assign_to(s: &Site, camera: &str, target: Target) -> Result<AssignmentView, AssignError> {
        let trail = Trail::new(&s.access, cli_actor());
        assign(&s.cfg, &s.store, &trail, camera, &target)
    }

    #[test]
    fn assign_by_name_by_load_and_unassign_are_audited() {
        let s = site(Role::Management);
        for n in ["door", "gate", "yard"] {
            s.store.add_camera(&camera(n, Some("pw-1"))).unwrap();
        }
        join(&s, &["rec1", "rec2", "rec3"], &["rec1", "rec2"]);
        let v = assign_to(&s, "door", Target::Server("rec2".into())).unwrap();
        assert_eq!((v.server.as_deref(), v.previous), (Some("rec2"), None));
        // By load: rec1 has none, rec2 one; rec3 never reported, so it is not a candidate.
        let v = assign_to(&s, "gate", Target::Auto).unwrap();
        assert_eq!(v.server.as_deref(), Some("rec1"));
        let v = assign_to(&s, "yard", Target::Auto).unwrap();
        assert_eq!(
            v.server.as_deref(),
            Some("rec1"),
            "ties go to the first name"
        );
        // An admin may still name a server that is not online: it records once it reports.
        let v = assign_to(&s, "yard", Target::Server("rec3".into())).unwrap();
        assert_eq!(
            (v.server.as_deref(), v.previous.as_deref()),
            (Some("rec3"), Some("rec1"))
        );
        let map = by_camera(&s.cfg).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&s.store.camera("door").unwrap().id], "rec2");
        let v = assign_to(&s, "door", Target::Unassigned).unwrap();
        assert_eq!((v.server, v.previous.as_deref()), (None, Some("rec2")));
        assert_eq!(by_camera(&s.cfg).unwrap().len(), 2);

        let audit = s
            .access
            .audit_query(&AuditQuery {
                kind: Some(AuditKind::CameraChanged),
                ..Default::default()
            })
            .unwrap();
        let ops: Vec<_> = audit
            .iter()
            .map(|e| {
                (
                    e.detail["operation"].as_str().unwrap().to_owned(),
                    e.detail["camera"].as_str().unwrap().to_owned(),
                    e.detail["automatic"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                ("camera_assigned".into(), "door".into(), false),
                ("camera_assigned".into(), "gate".into(), true),
                ("camera_assigned".into(), "yard".into(), true),
                ("camera_assigned".into(), "yard".into(), false),
                ("camera_unassigned".into(), "door".into(), false),
            ]
        );
        assert_eq!(audit[3].detail["previous"], "rec1");
    }

    #[test]
    fn refusals_unknown_offline_removed_unknown_camera_and_role() {
        let s = site(Role::Management);
        s.store.add_camera(&camera("door", None)).unwrap();
        join(&s, &["rec1"], &[]);
        let e = assign_to(&s, "door", Target::Server("nope".into())).unwrap_err();
        assert!(
            matches!(e, AssignError::Refused(AssignRefusal::Unknown(_))),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        // rec1 joined but never reported: nobody is online to choose from.
        let e = assign_to(&s, "door", Target::Auto).unwrap_err();
        assert!(
            matches!(e, AssignError::Refused(AssignRefusal::NoneOnline)),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = assign_to(&s, "nosuch", Target::Server("rec1".into())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assign_to(&s, "door", Target::Server("rec1".into())).unwrap();
        Registry::open(&s.cfg.data_dir)
            .unwrap()
            .remove("rec1", OffsetDateTime::now_utc())
            .unwrap()
            .unwrap();
        assert!(by_camera(&s.cfg).unwrap().is_empty(), "removal unassigns");
        let e = assign_to(&s, "door", Target::Server("rec1".into())).unwrap_err();
        assert!(
            matches!(e, AssignError::Refused(AssignRefusal::Removed(_))),
            "{e}"
        );
        // Nothing refused was audited.
        let audit = s
            .access
            .audit_query(&AuditQuery {
                kind: Some(AuditKind::CameraChanged),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(audit.len(), 1);

        for role in [Role::Recording, Role::All] {
            let s = site(role);
            s.store.add_camera(&camera("door", None)).unwrap();
            let e = assign_to(&s, "door", Target::Auto).unwrap_err();
            assert!(matches!(e, AssignError::NotManagement(_)), "{e}");
            assert!(e.to_string().contains("management"), "{e}");
            assert!(by_camera(&s.cfg).unwrap().is_empty());
        }
    }

    #[test]
    fn definitions_carry_credentials_and_the_revision_follows_them() {
        let s = site(Role::Management);
        s.store.add_camera(&camera("door", Some("pw-1"))).unwrap();
        s.store.add_camera(&camera("gate", None)).unwrap();
        join(&s, &["rec1"], &["rec1"]);
        assign_to(&s, "door", Target::Server("rec1".into())).unwrap();
        let reg = Registry::open(&s.cfg.data_dir).unwrap();
        let defs = definitions(&s.store, &reg, "rec1").unwrap();
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].password.as_deref(), Some("pw-1"));
        assert!(definitions(&s.store, &reg, "rec2").unwrap().is_empty());
        let key = [7u8; 32];
        let r1 = revision(&key, &defs);
        assert_eq!(r1.len(), 64);
        assert_eq!(r1, revision(&key, &defs), "stable");
        assert_ne!(r1, revision(&[8u8; 32], &defs), "keyed");
        let mut changed = defs.clone();
        changed[0].password = Some("pw-2".into());
        assert_ne!(
            r1,
            revision(&key, &changed),
            "a new password is a new revision"
        );
        // A camera removed on the management server loses its assignment.
        s.store.remove_camera("door", false).unwrap();
        assert!(definitions(&s.store, &reg, "rec1").unwrap().is_empty());
        assert!(reg.assignments().unwrap().is_empty());
    }

    fn assigned(id: &str, name: &str, password: &str, enabled: bool) -> AssignedCamera {
        AssignedCamera {
            id: id.into(),
            name: name.into(),
            url: format!("rtsp://127.0.0.1:8554/{name}"),
            username: Some("viewer".into()),
            password: Some(password.into()),
            enabled,
            max_age_secs: Some(3600),
            max_bytes: None,
            tls_pin: None,
            secondary: None,
        }
    }

    #[test]
    fn a_recording_server_applies_adds_changes_and_stops_keeping_its_own_cameras() {
        let s = site(Role::Recording);
        let own = s.store.add_camera(&camera("local", None)).unwrap();
        let list = |rev: &str, cameras: Vec<AssignedCamera>| Assignments {
            revision: rev.into(),
            cameras,
        };
        let door = assigned("cam-00000000000a", "door", "pw-1", true);
        let gate = assigned("cam-00000000000b", "gate", "pw-1", true);
        let done = apply(
            &s.store,
            &s.cfg.data_dir,
            &list("1", vec![door.clone(), gate.clone()]),
        );
        assert_eq!(done.added, ["door", "gate"]);
        assert!(done.changed.is_empty() && done.stopped.is_empty() && done.refused.is_empty());
        let cam = s.store.camera("cam-00000000000a").unwrap();
        assert_eq!((cam.name.as_str(), cam.enabled), ("door", true));
        assert_eq!(
            s.store.camera_password(&cam.id).unwrap().as_deref(),
            Some("pw-1")
        );
        // The same list again changes nothing.
        assert!(
            apply(
                &s.store,
                &s.cfg.data_dir,
                &list("1", vec![door.clone(), gate.clone()])
            )
            .is_empty()
        );
        // A new password alone is a change (the recorder needs a new session).
        let door2 = assigned("cam-00000000000a", "door", "pw-2", true);
        let done = apply(
            &s.store,
            &s.cfg.data_dir,
            &list("2", vec![door2.clone(), gate]),
        );
        assert_eq!(done.changed, ["door"]);
        assert_eq!(
            s.store.camera_password(&cam.id).unwrap().as_deref(),
            Some("pw-2")
        );
        // gate assigned away: disabled, not removed; the local camera is left alone.
        let done = apply(&s.store, &s.cfg.data_dir, &list("3", vec![door2]));
        assert_eq!(done.stopped, ["gate"]);
        assert!(!s.store.camera("gate").unwrap().enabled);
        assert!(s.store.camera(&own.id).unwrap().enabled);
        // Nothing assigned any more, then door comes back: the same camera, enabled again.
        let done = apply(&s.store, &s.cfg.data_dir, &list("4", vec![]));
        assert_eq!(done.stopped, ["door"]);
        let done = apply(&s.store, &s.cfg.data_dir, &list("5", vec![door.clone()]));
        assert_eq!(done.changed, ["door"]);
        assert!(s.store.camera("door").unwrap().enabled);
        assert_eq!(s.store.cameras().unwrap().len(), 3);
        // A camera named like one added here is refused, not merged into it.
        let clash = assigned("cam-00000000000c", "local", "pw-1", true);
        let done = apply(&s.store, &s.cfg.data_dir, &list("6", vec![door, clash]));
        assert_eq!(done.refused.len(), 1, "{done:?}");
        assert!(
            done.refused[0].1.contains("added on this recording server"),
            "{done:?}"
        );
        assert_eq!(s.store.camera("local").unwrap().id, own.id);
        assert!(s.store.camera("cam-00000000000c").is_err());
        // Refusal messages never carry a password.
        assert!(!format!("{done:?}").contains("pw-1"));
    }
}
