//! Password rotation against real cameras (vigil_testkit::RotationCameras: the GStreamer RTSP
//! server with Digest auth and an ONVIF device service per camera over HTTPS whose SetUser
//! changes the RTSP credentials too). Ten cameras recording, one unreachable over ONVIF and
//! one refusing SetUser: eight end up with a new password the camera proves and records on
//! (the old one refused), two keep their old password with the reason; an interrupted
//! rotation is settled by `vigil serve`'s start-up, audited in the installation's audit log
//! also when no API runs beside the runtime. No password in any report, audit entry or
//! event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_access::{Access, AccessConfig, AuditKind, AuditQuery};
use vigil_app::audit::{Trail, cli_actor};
use vigil_app::onvif::{self, OnvifAdd};
use vigil_app::rotation::{NOT_ROTATABLE_RTSP, Outcome, Rotator, Selection};
use vigil_app::runtime::{self, RuntimeOptions};
use vigil_config::Config;
use vigil_media::ingest::{IngestError, Opener, RetinaOpener, Source};
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{NewCamera, Store, now_us};
use vigil_testkit::{Clip, RotationCameraSpec, RotationCameras};

struct Site {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    access: Access,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::init(&dir.path().join("data")).unwrap());
    let access = Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap();
    Site { dir, store, access }
}

fn initial(i: usize) -> String {
    format!("Initial-pw-{i}")
}

fn clip() -> Clip {
    Clip::h264(2, 25, 25, 320, 180, false)
}

/// Adds every camera of the peer by ONVIF, pinning the peer's self-signed certificate.
async fn add_all(s: &Site, cams: &RotationCameras, specs: &[RotationCameraSpec]) {
    let trail = Trail::new(&s.access, cli_actor());
    for spec in specs {
        onvif::add(
            &s.store,
            TrustStore::new(&[], false),
            &OnvifAdd {
                name: spec.name.clone(),
                address: cams.onvif_url(&spec.name),
                username: Some(spec.user.clone()),
                password: Some(spec.password.clone()),
                pin: Some(cams.fingerprint().to_owned()),
                allow_http: false,
                enabled: true,
                max_age_secs: None,
                max_bytes: None,
            },
            &trail,
        )
        .await
        .unwrap_or_else(|e| panic!("adding {}: {e}", spec.name));
    }
}

fn rotator(s: &Site) -> Rotator {
    let mut r = Rotator::new(
        s.store.clone(),
        TrustStore::new(&[], false),
        Arc::new(RetinaOpener),
        "vigil-test",
    );
    r.concurrency = 4;
    r
}

/// An RTSP DESCRIBE of the camera's stream with these credentials.
async fn describe(url: &str, user: &str, password: &str) -> Result<(), IngestError> {
    RetinaOpener
        .describe(&Source {
            stream_id: "probe".into(),
            url: url.into(),
            username: Some(user.into()),
            password: Some(password.into()),
            inactivity_timeout: Duration::from_secs(5),
            tls_pin: None,
        })
        .await
}

/// The runtime (`vigil serve`'s recording loop, start-up resolution included) on a task
/// until the returned sender is dropped or sent to.
fn serve(
    s: &Site,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let cfg = Config::with_data_dir(s.dir.path().join("data"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store = s.store.clone();
    let task = tokio::spawn(async move {
        runtime::run(
            cfg,
            store,
            async {
                let _ = stopped.await;
            },
            RuntimeOptions::default(),
        )
        .await
        .unwrap();
    });
    (stop, task)
}

/// Waits until every named camera's recorder received a frame after `after_us`.
async fn wait_recording(store: &Store, names: &[String], after_us: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut behind = Vec::new();
        for n in names {
            let cam = store.camera(n).unwrap();
            let st = store.status(&cam.id).unwrap();
            let ok = st.as_ref().is_some_and(|s| {
                s.state == "recording" && s.last_frame_us.is_some_and(|t| t > after_us)
            });
            if !ok {
                behind.push(format!("{n}: {st:?}"));
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not recording on time: {behind:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_cameras_eight_rotated_and_recording_two_keep_their_old_password_with_reasons() {
    let clip = clip();
    let mut specs: Vec<RotationCameraSpec> = (0..10)
        .map(|i| RotationCameraSpec::new(&format!("cam{i}"), &format!("user{i}"), &initial(i)))
        .collect();
    specs[8].setuser_fails = true;
    let mut cams = RotationCameras::start(clip.path(), &specs);
    let s = site();
    add_all(&s, &cams, &specs).await;
    // One camera added by RTSP URL: nothing to rotate it with.
    s.store
        .add_camera(&NewCamera {
            name: "plain".into(),
            url: cams.rtsp_url("cam0"),
            username: Some("user0".into()),
            password: Some(initial(0)),
            ..NewCamera::default()
        })
        .unwrap();
    s.store.set_camera_enabled("plain", false).unwrap();
    let (stop, task) = serve(&s);
    let names: Vec<String> = specs.iter().map(|c| c.name.clone()).collect();
    wait_recording(&s.store, &names, 0, Duration::from_secs(60)).await;
    cams.set_reachable("cam9", false);

    let trail = Trail::new(&s.access, cli_actor());
    let mut heard = Vec::new();
    let report = rotator(&s)
        .rotate(&Selection::All, Some(&trail), |l| {
            heard.push(l.camera.clone())
        })
        .await
        .unwrap();
    assert_eq!(heard.len(), 11, "progress for every camera: {heard:?}");
    // Each line spans its camera's turn, inside the run; never more than `concurrency` (4)
    // cameras at once (bench/cameras derives its peak concurrency from these spans).
    for c in &report.cameras {
        assert!(
            report.started_us <= c.started_us
                && c.started_us <= c.time_us
                && c.time_us <= report.finished_us,
            "{c:?} in {report:?}"
        );
    }
    let at_once = report
        .cameras
        .iter()
        .map(|c| {
            report
                .cameras
                .iter()
                .filter(|o| o.started_us <= c.started_us && c.started_us < o.time_us)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        (1..=4).contains(&at_once),
        "{at_once} cameras at once: {report:?}"
    );
    let slowest = report
        .cameras
        .iter()
        .map(|c| c.time_us - c.started_us)
        .max()
        .unwrap();
    assert!(slowest > 0, "a rotation that took no time: {report:?}");
    let by = |n: &str| {
        report
            .cameras
            .iter()
            .find(|c| c.camera == n)
            .unwrap()
            .clone()
    };
    assert_eq!(report.count(Outcome::Rotated), 8, "{report:#?}");
    let refused = by("cam8");
    assert_eq!(refused.result, Outcome::KeptOld);
    let why = refused.reason.unwrap();
    assert!(
        why.contains("refused the new password") && why.contains("password change is locked"),
        "{why}"
    );
    let unreachable = by("cam9");
    assert_eq!(unreachable.result, Outcome::KeptOld);
    let why = unreachable.reason.unwrap();
    assert!(
        why.contains("cannot connect") && why.contains("never sent"),
        "{why}"
    );
    let plain = by("plain");
    assert_eq!(
        (plain.result, plain.reason.as_deref()),
        (Outcome::NotRotatable, Some(NOT_ROTATABLE_RTSP))
    );
    assert!(report.any_failed());

    for (i, spec) in specs.iter().enumerate() {
        let cam = s.store.camera(&spec.name).unwrap();
        let stored = s.store.camera_password(&cam.id).unwrap().unwrap();
        let on_camera = cams.password(&spec.name);
        // Vigil's vault and the camera agree, whatever happened.
        assert_eq!(stored, on_camera, "{}", spec.name);
        assert_eq!(s.store.pending_password(&cam.id).unwrap(), None);
        if i < 8 {
            assert_ne!(stored, initial(i));
            assert!(vigil_app::rotation::PasswordRule::default().complete(&stored));
            // The old password is refused by the camera, on RTSP and ONVIF alike.
            assert!(matches!(
                describe(&cam.url, &spec.user, &initial(i)).await,
                Err(IngestError::Unauthorized)
            ));
            describe(&cam.url, &spec.user, &stored).await.unwrap();
            assert!(
                s.store
                    .rotation_state(&spec.name)
                    .unwrap()
                    .rotated_us
                    .is_some()
            );
        } else {
            assert_eq!(stored, initial(i));
            assert!(
                s.store
                    .rotation_state(&spec.name)
                    .unwrap()
                    .rotated_us
                    .is_none()
            );
        }
    }
    // The secondary-less cameras record on: the rotated ones reconnected (the camera closed
    // their sessions) with the new password, the others with the old one.
    wait_recording(
        &s.store,
        &names,
        report.finished_us,
        Duration::from_secs(60),
    )
    .await;
    let _ = stop.send(());
    task.await.unwrap();

    // The audit log has one entry per camera with the result and reason, never a password.
    let entries = s
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::CameraPasswordRotation),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 11);
    let text = serde_json::to_string(&report).unwrap()
        + &entries
            .iter()
            .map(|e| e.detail.to_string())
            .collect::<String>();
    for spec in &specs {
        let now = cams.password(&spec.name);
        assert!(
            !text.contains(&now),
            "a password in the report or audit log"
        );
        assert!(!text.contains(&spec.password));
    }
    assert!(text.contains("\"kept_old\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_settled_at_start_up_with_the_password_the_camera_has() {
    let clip = clip();
    let specs: Vec<RotationCameraSpec> = (0..3)
        .map(|i| RotationCameraSpec::new(&format!("cam{i}"), &format!("user{i}"), &initial(i)))
        .collect();
    let cams = RotationCameras::start(clip.path(), &specs);
    let s = site();
    add_all(&s, &cams, &specs).await;
    let id = |n: &str| s.store.camera(n).unwrap().id;
    // cam0: the crash came after SetUser: the camera has the pending password.
    // cam1: the crash came before SetUser: the camera still has the old one.
    // cam2: the crash came after SetUser, and the camera is unreachable now: both are kept.
    s.store.begin_rotation(&id("cam0"), "Pending0pw").unwrap();
    s.store.begin_rotation(&id("cam1"), "Pending1pw").unwrap();
    s.store.begin_rotation(&id("cam2"), "Pending2pw").unwrap();
    set_on_camera(&cams, "cam0", "user0", &initial(0), "Pending0pw").await;
    set_on_camera(&cams, "cam2", "user2", &initial(2), "Pending2pw").await;
    let mut cams = cams;
    cams.set_reachable("cam2", false);

    let report = rotator(&s).resolve_interrupted(None).await.unwrap();
    let by = |n: &str| report.iter().find(|c| c.camera == n).unwrap().clone();
    assert_eq!(by("cam0").result, Outcome::Rotated);
    assert_eq!(by("cam1").result, Outcome::KeptOld);
    assert_eq!(by("cam2").result, Outcome::Failed);
    assert!(
        by("cam2")
            .reason
            .unwrap()
            .contains("both are kept and tried again at the next start")
    );
    assert_eq!(
        s.store.camera_password(&id("cam0")).unwrap().unwrap(),
        "Pending0pw"
    );
    assert_eq!(
        s.store.camera_password(&id("cam1")).unwrap().unwrap(),
        initial(1)
    );
    assert_eq!(s.store.pending_password(&id("cam1")).unwrap(), None);
    // Never lose either: cam2 keeps both until its camera answers again.
    assert_eq!(
        s.store.camera_password(&id("cam2")).unwrap().unwrap(),
        initial(2)
    );
    assert_eq!(
        s.store.pending_password(&id("cam2")).unwrap().unwrap(),
        "Pending2pw"
    );
    cams.set_reachable("cam2", true);
    // `vigil serve` settles it at its start, before recording: cam2 records on the
    // password its camera has.
    let (stop, task) = serve(&s);
    let names: Vec<String> = specs.iter().map(|c| c.name.clone()).collect();
    wait_recording(&s.store, &names, now_us(), Duration::from_secs(60)).await;
    assert_eq!(
        s.store.camera_password(&id("cam2")).unwrap().unwrap(),
        "Pending2pw"
    );
    assert_eq!(s.store.pending_password(&id("cam2")).unwrap(), None);
    let _ = stop.send(());
    task.await.unwrap();
    // The runtime ran without an API (as `vigil serve --role recording` does) and was given
    // no audit log: it opened the installation's own, and the start-up resolution is there.
    let installation =
        vigil_app::audit::open_access(&Config::with_data_dir(s.dir.path().join("data"))).unwrap();
    let entries = installation
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::CameraPasswordRotation),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = &entries[0];
    assert_eq!(
        (e.user.as_deref(), e.source.as_deref()),
        (Some("server:password-rotation (start-up)"), Some("server"))
    );
    assert_eq!(e.detail["camera"], "cam2");
    assert_eq!(e.detail["result"], "rotated");
    assert!(
        !e.detail.to_string().contains("Pending2pw"),
        "no password in the audit log"
    );
    assert!(matches!(
        installation.verify_audit_chain().unwrap(),
        vigil_access::ChainReport::Intact { .. }
    ));
}

/// Changes the camera's password the way a rotation does, with ONVIF SetUser.
async fn set_on_camera(cams: &RotationCameras, name: &str, user: &str, old: &str, new: &str) {
    let mut options = vigil_onvif::Options::new(TrustStore::new(&[], false));
    options.pin = Some(cams.fingerprint().to_owned());
    let client = vigil_onvif::Client::new(
        vigil_onvif::Target::parse(&cams.onvif_url(name)).unwrap(),
        Some(vigil_onvif::Credentials::new(user, old)),
        options,
    );
    client.set_password(user, new).await.unwrap();
    assert_eq!(cams.password(name), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_picks_onvif_cameras_whose_password_is_older_than_the_period() {
    let s = site();
    let add = |name: &str, onvif: bool, password: bool| {
        let cam = s
            .store
            .add_camera(&NewCamera {
                name: name.into(),
                url: format!("rtsp://127.0.0.1:1/{name}"),
                username: Some("u".into()),
                password: password.then(|| "Old-pw-123".to_owned()),
                ..NewCamera::default()
            })
            .unwrap();
        if onvif {
            s.store
                .set_device_identity(
                    &cam.id,
                    &vigil_media::store::DeviceIdentity {
                        onvif_url: "https://127.0.0.1:1/onvif/device_service".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        cam.id
    };
    add("by-url", false, true);
    add("no-password", true, false);
    let due = add("due", true, true);
    let pending = add("pending", true, true);
    let disabled = add("disabled", true, true);
    s.store.set_camera_enabled(&disabled, false).unwrap();
    s.store.begin_rotation(&pending, "Pending-pw-1").unwrap();
    let r = rotator(&s);
    let names = |period: Duration, at: i64| -> Vec<String> {
        r.due(period, at)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    let day = Duration::from_secs(86_400);
    // Just added: not due until a period after it was added.
    assert!(names(day, now_us()).is_empty());
    let later = now_us() + 2 * 86_400_000_000;
    assert_eq!(names(day, later), vec!["due".to_owned()]);
    // Rotated now: not due again until a period later.
    s.store.begin_rotation(&due, "New-pw-12345").unwrap();
    s.store.commit_rotation(&due).unwrap();
    assert!(names(day * 3, later).is_empty());
    assert_eq!(
        names(day, now_us() + 2 * 86_400_000_000),
        vec!["due".to_owned()]
    );
}
