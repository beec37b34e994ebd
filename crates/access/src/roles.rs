//! Roles, permissions, camera scopes and the authorization decision. Deny by default: a
//! permission is granted only if the role's table lists it and, for camera permissions, the
//! principal's camera scope includes the camera.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's (or API token's) role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, on every camera.
    Admin,
    /// Live view, playback, export and verification of permitted cameras.
    Operator,
    /// Live view and playback of permitted cameras.
    Viewer,
    /// The audit log only.
    Auditor,
    /// An analytics system or other sender: posting events (of permitted cameras), nothing
    /// else (the `events:write` scope of docs/events-in.md). Meant for API tokens.
    EventSource,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Viewer,
        Role::Auditor,
        Role::EventSource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::EventSource => "event_source",
        }
    }

    /// The role's permission table. Anything not listed is denied.
    pub fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(p, ViewLive | Playback | Export | Verify | HandleAlarms),
            Role::Viewer => matches!(p, ViewLive | Playback),
            Role::Auditor => matches!(p, ViewAudit),
            Role::EventSource => matches!(p, WriteEvents),
        }
    }

    /// Admins see every camera whatever their stored camera list says.
    pub fn sees_all_cameras(self) -> bool {
        self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; use one of admin, operator, viewer, auditor, event_source")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            "auditor" => Ok(Role::Auditor),
            "event_source" => Ok(Role::EventSource),
            _ => Err(UnknownRole(s.chars().take(32).collect())),
        }
    }
}

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Watch a camera live.
    ViewLive,
    /// Play back recorded video.
    Playback,
    /// Export a time range (evidence).
    Export,
    /// Verify the signatures of recordings or exports.
    Verify,
    /// Add, change, remove cameras.
    ManageCameras,
    /// Users, roles, camera permissions, API tokens, unblocking addresses.
    ManageUsers,
    /// Server configuration (ports, retention, IDS, SIEM...).
    ManageSettings,
    /// The CA, server certificates, imports and CSRs.
    ManageCertificates,
    /// Read and export the audit log; IDS status.
    ViewAudit,
    /// Acknowledge and close alarms, make and delete bookmarks (of permitted cameras).
    HandleAlarms,
    /// Post events about permitted cameras (analytics, docs/events-in.md).
    WriteEvents,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::ViewLive,
        Permission::Playback,
        Permission::Export,
        Permission::Verify,
        Permission::ManageCameras,
        Permission::ManageUsers,
        Permission::ManageSettings,
        Permission::ManageCertificates,
        Permission::ViewAudit,
        Permission::HandleAlarms,
        Permission::WriteEvents,
    ];

    /// Whether the permission concerns a camera, so the camera scope applies.
    pub fn is_camera_scoped(self) -> bool {
        matches!(
            self,
            Permission::ViewLive
                | Permission::Playback
                | Permission::Export
                | Permission::Verify
                | Permission::HandleAlarms
                | Permission::WriteEvents
        )
    }
}

/// Which cameras a principal may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraScope {
    All,
    Only(BTreeSet<String>),
}

impl CameraScope {
    /// `All` for an empty list would be a silent widening; an empty list means no camera.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(cams: I) -> Self {
        CameraScope::Only(cams.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, camera: &str) -> bool {
        match self {
            CameraScope::All => true,
            CameraScope::Only(set) => set.contains(camera),
        }
    }
}

/// Who is making a request: a logged-in user's session or an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    User {
        username: String,
        role: Role,
        cameras: CameraScope,
    },
    Token {
        token_id: String,
        name: String,
        role: Role,
        cameras: CameraScope,
    },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::User { role, .. } | Principal::Token { role, .. } => *role,
        }
    }

    pub fn cameras(&self) -> &CameraScope {
        match self {
            Principal::User { cameras, .. } | Principal::Token { cameras, .. } => cameras,
        }
    }

    /// The name written to the audit log: the user name, or `token:<id>`.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::User { username, .. } => username.clone(),
            Principal::Token { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// Whether this principal may use `camera` at all (for filtering camera lists).
    pub fn can_see_camera(&self, camera: &str) -> bool {
        self.role().sees_all_cameras() || self.cameras().contains(camera)
    }

    /// The authorization decision. See [`authorize`].
    pub fn authorize(&self, permission: Permission, camera: Option<&str>) -> Result<(), Denied> {
        authorize(self, permission, camera)
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("role {role} does not have permission {permission:?}")]
    Role { role: Role, permission: Permission },
    #[error("no permission for camera {camera:?}")]
    Camera { camera: String },
    #[error(
        "permission {permission:?} needs a camera for a principal limited to some cameras; name the camera or filter the list with can_see_camera"
    )]
    CameraRequired { permission: Permission },
}

/// Decides whether `principal` may do `permission` (on `camera`, if the request concerns one).
///
/// Deny by default: the role must grant the permission; when a camera is named it must be in
/// the principal's scope; a camera permission without a camera is granted only to principals
/// that may see every camera (handlers that list cameras filter with
/// [`Principal::can_see_camera`] instead).
pub fn authorize(
    principal: &Principal,
    permission: Permission,
    camera: Option<&str>,
) -> Result<(), Denied> {
    let role = principal.role();
    if !role.grants(permission) {
        return Err(Denied::Role { role, permission });
    }
    let all = role.sees_all_cameras() || *principal.cameras() == CameraScope::All;
    match camera {
        Some(cam) if !all && !principal.cameras().contains(cam) => Err(Denied::Camera {
            camera: cam.to_owned(),
        }),
        None if permission.is_camera_scoped() && !all => Err(Denied::CameraRequired { permission }),
        _ => Ok(()),
    }
}
