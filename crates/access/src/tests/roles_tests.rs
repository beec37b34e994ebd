use super::*;
use Permission::*;

/// The expected table, written out by hand: every role × every permission.
/// Columns: ViewLive, Playback, Export, Verify, ManageCameras, ManageUsers, ManageSettings,
/// ManageCertificates, ViewAudit, HandleAlarms, WriteEvents.
const EXPECTED: [(Role, [bool; 11]); 5] = [
    (
        Role::Admin,
        [
            true, true, true, true, true, true, true, true, true, true, true,
        ],
    ),
    (
        Role::Operator,
        [
            true, true, true, true, false, false, false, false, false, true, false,
        ],
    ),
    (
        Role::Viewer,
        [
            true, true, false, false, false, false, false, false, false, false, false,
        ],
    ),
    (
        Role::Auditor,
        [
            false, false, false, false, false, false, false, false, true, false, false,
        ],
    ),
    (
        Role::EventSource,
        [
            false, false, false, false, false, false, false, false, false, false, true,
        ],
    ),
];

const COLUMNS: [Permission; 11] = [
    ViewLive,
    Playback,
    Export,
    Verify,
    ManageCameras,
    ManageUsers,
    ManageSettings,
    ManageCertificates,
    ViewAudit,
    HandleAlarms,
    WriteEvents,
];

fn user(role: Role, cameras: CameraScope) -> Principal {
    Principal::User {
        username: "u".into(),
        role,
        cameras,
    }
}

#[test]
fn role_permission_matrix_matches_the_table() {
    assert_eq!(
        COLUMNS,
        Permission::ALL,
        "the table covers every permission"
    );
    assert_eq!(
        EXPECTED.map(|(r, _)| r),
        Role::ALL,
        "the table covers every role"
    );
    for (role, row) in EXPECTED {
        for (perm, expected) in COLUMNS.into_iter().zip(row) {
            assert_eq!(role.grants(perm), expected, "{role} × {perm:?}");
            // Through authorize, on a camera the principal may see.
            let p = user(role, CameraScope::only(["cam-1"]));
            let camera = perm.is_camera_scoped().then_some("cam-1");
            let got = authorize(&p, perm, camera);
            assert_eq!(got.is_ok(), expected, "{role} × {perm:?}: {got:?}");
            if !expected {
                assert_eq!(
                    got,
                    Err(Denied::Role {
                        role,
                        permission: perm
                    })
                );
            }
        }
    }
}

#[test]
fn camera_outside_scope_is_denied() {
    let viewer = user(Role::Viewer, CameraScope::only(["cam-1", "cam-2"]));
    assert_eq!(viewer.authorize(ViewLive, Some("cam-2")), Ok(()));
    assert_eq!(
        viewer.authorize(Playback, Some("cam-3")),
        Err(Denied::Camera {
            camera: "cam-3".into()
        })
    );
    assert!(viewer.can_see_camera("cam-1"));
    assert!(!viewer.can_see_camera("cam-3"));
}

#[test]
fn camera_permission_without_camera_needs_full_scope() {
    let limited = user(Role::Operator, CameraScope::only(["cam-1"]));
    assert_eq!(
        limited.authorize(Export, None),
        Err(Denied::CameraRequired { permission: Export })
    );
    let everything = user(Role::Operator, CameraScope::All);
    assert_eq!(everything.authorize(Export, None), Ok(()));
    assert_eq!(everything.authorize(Export, Some("any-cam")), Ok(()));
}

#[test]
fn empty_camera_list_grants_no_camera() {
    let none = user(Role::Viewer, CameraScope::only(Vec::<String>::new()));
    assert!(none.authorize(ViewLive, Some("cam-1")).is_err());
    assert!(none.authorize(ViewLive, None).is_err());
}

#[test]
fn admin_sees_every_camera_whatever_its_list() {
    let admin = user(Role::Admin, CameraScope::only(Vec::<String>::new()));
    assert_eq!(admin.authorize(ViewLive, Some("cam-9")), Ok(()));
    assert_eq!(admin.authorize(ManageCertificates, None), Ok(()));
}

#[test]
fn auditor_is_refused_video_even_with_all_cameras() {
    let auditor = user(Role::Auditor, CameraScope::All);
    assert!(matches!(
        auditor.authorize(ViewLive, Some("cam-1")),
        Err(Denied::Role { .. })
    ));
    assert_eq!(auditor.authorize(ViewAudit, None), Ok(()));
}

#[test]
fn role_parsing() {
    assert_eq!("Operator".parse::<Role>(), Ok(Role::Operator));
    let e = "root".parse::<Role>().unwrap_err();
    assert!(
        e.to_string()
            .contains("admin, operator, viewer, auditor, event_source"),
        "{e}"
    );
}
