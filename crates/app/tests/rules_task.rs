//! The rule task on a real event bus: an event published by a producer fires a rule, whose
//! actions raise (and de-duplicate) an alarm, bookmark the camera and forward the match;
//! acknowledging and closing are audited and published; the rule-test use case runs nothing.

use std::sync::Arc;
use std::time::Duration;

use vigil_access::{
    Access, AccessConfig, Actor, AuditKind, AuditQuery, CameraScope, Principal, Role,
};
use vigil_app::alarms::Alarms;
use vigil_config::RuleConfig;
use vigil_events::alarms::{AlarmQuery, AlarmState, AlarmStep};
use vigil_events::bookmarks::{BookmarkQuery, Creator};
use vigil_events::{
    Category, EventBus, EventQuery, EventStore, Live, NewEvent, Severity, Source, SourceKind,
};

const RULES: &str = r#"
data_dir = "/unused"

[[rules]]
name = "port-security"
kinds = ["syslog.dot1x_failure"]
cameras = ["lobby"]
min_severity = "warning"
alarm = { priority = 2 }
bookmark = { pre_seconds = 10, post_seconds = 30 }
siem = true
"#;

fn rules() -> Vec<RuleConfig> {
    vigil_config::Config::parse(RULES, std::path::Path::new("vigil.toml"))
        .unwrap()
        .rules
}

fn dot1x(source: &str, camera: &str) -> NewEvent {
    NewEvent {
        time_us: vigil_events::model::now_us(),
        source: Source::new(SourceKind::Syslog, source),
        kind: "syslog.dot1x_failure".into(),
        category: Category::External,
        severity: Severity::Warning,
        message: format!("%DOT1X-5-FAIL: Authentication failed for client on Gi1/0/3 ({camera})"),
        camera: Some(camera.into()),
        attributes: [("interface".to_owned(), "Gi1/0/3".to_owned())].into(),
    }
}

struct World {
    _dir: tempfile::TempDir,
    bus: Arc<EventBus>,
    access: Arc<Access>,
    alarms: Arc<Alarms>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::start(Arc::new(EventStore::open(dir.path()).unwrap()), "srv").unwrap();
    let access =
        Arc::new(Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap());
    let alarms = Alarms::open(bus.clone(), access.clone(), &rules()).unwrap();
    World {
        _dir: dir,
        bus,
        access,
        alarms,
    }
}

fn user(role: Role, cameras: CameraScope) -> Principal {
    Principal::User {
        username: "op".into(),
        role,
        cameras,
    }
}

/// Waits until `f` holds (the rule worker runs on its own thread).
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_fires_a_rule_that_raises_bookmarks_and_forwards() {
    let w = world();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = w.alarms.spawn_rules(async move {
        let _ = stopped.await;
    });
    let mut live = w.bus.subscribe();
    let admin = user(Role::Admin, CameraScope::All);
    w.bus.publish(dot1x("sw-1", "lobby")).unwrap();
    // Not matched: another camera, too mild.
    w.bus.publish(dot1x("sw-1", "gate")).unwrap();
    let mut mild = dot1x("sw-1", "lobby");
    mild.severity = Severity::Info;
    w.bus.publish(mild).unwrap();
    until("the alarm", || {
        w.alarms
            .list(&admin, AlarmQuery::default())
            .unwrap()
            .alarms
            .len()
            == 1
    })
    .await;
    // The same rule, camera and source again: counted into the open alarm.
    w.bus.publish(dot1x("sw-1", "lobby")).unwrap();
    until("the count", || {
        w.alarms.list(&admin, AlarmQuery::default()).unwrap().alarms[0].count == 2
    })
    .await;
    // Another source: another alarm.
    w.bus.publish(dot1x("sw-2", "lobby")).unwrap();
    until("the second alarm", || {
        w.alarms
            .list(&admin, AlarmQuery::default())
            .unwrap()
            .alarms
            .len()
            == 2
    })
    .await;
    let page = w.alarms.list(&admin, AlarmQuery::default()).unwrap();
    let first = page
        .alarms
        .iter()
        .find(|a| a.source == "sw-1")
        .unwrap()
        .clone();
    assert_eq!(
        (first.rule.as_str(), first.priority, first.state),
        ("port-security", 2, AlarmState::New)
    );
    assert_eq!(first.camera.as_deref(), Some("lobby"));
    // Every matching event bookmarked lobby from 10 s before to 30 s after it (the worker
    // stores an event's bookmark after its alarm, so the last one may still be on its way).
    let lobby = || BookmarkQuery {
        camera: Some("lobby".into()),
        ..Default::default()
    };
    until("the bookmarks", || {
        w.alarms.bookmarks(&admin, lobby()).unwrap().bookmarks.len() == 3
    })
    .await;
    let marks = w
        .alarms
        .bookmarks(
            &admin,
            BookmarkQuery {
                camera: Some("lobby".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(marks.bookmarks.len(), 3);
    let b = &marks.bookmarks[0];
    assert_eq!(b.to_us - b.from_us, 40_000_000);
    assert_eq!(b.creator, Creator::Rule("port-security".into()));
    assert_eq!(b.alarm_id, Some(first.id));
    // Acknowledge and close as an operator of lobby: audited and published.
    let op = user(Role::Operator, CameraScope::only(["lobby"]));
    let actor = Actor {
        name: "op".into(),
        source: "192.0.2.1".into(),
    };
    let a = w
        .alarms
        .step(&op, &actor, first.id, AlarmStep::Acknowledge, Some("on it"))
        .unwrap();
    assert_eq!(a.acknowledged.as_ref().unwrap().by, "op");
    let a = w
        .alarms
        .step(&op, &actor, first.id, AlarmStep::Close, None)
        .unwrap();
    assert_eq!(a.state, AlarmState::Closed);
    let e = w
        .alarms
        .step(&op, &actor, first.id, AlarmStep::Close, None)
        .unwrap_err();
    assert_eq!(
        vigil_app::Classified::kind(&e),
        vigil_app::ErrorKind::Conflict
    );
    // A viewer may read but not handle; an operator of another camera neither sees nor handles.
    let viewer = user(Role::Viewer, CameraScope::only(["lobby"]));
    assert_eq!(
        w.alarms
            .list(&viewer, AlarmQuery::default())
            .unwrap()
            .alarms
            .len(),
        2
    );
    let second = page.alarms.iter().find(|a| a.source == "sw-2").unwrap().id;
    let e = w
        .alarms
        .step(&viewer, &actor, second, AlarmStep::Acknowledge, None)
        .unwrap_err();
    assert_eq!(
        vigil_app::Classified::kind(&e),
        vigil_app::ErrorKind::Forbidden
    );
    let other = user(Role::Operator, CameraScope::only(["gate"]));
    assert!(
        w.alarms
            .list(&other, AlarmQuery::default())
            .unwrap()
            .alarms
            .is_empty()
    );
    assert!(
        w.alarms
            .step(&other, &actor, second, AlarmStep::Close, None)
            .is_err()
    );
    assert!(w.alarms.get(&other, second).is_err());
    let auditor = user(Role::Auditor, CameraScope::All);
    assert!(w.alarms.list(&auditor, AlarmQuery::default()).is_err());
    let audited = w
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::AlarmChanged),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(audited.len(), 2);
    // The bus carried alarm.raised twice, alarm.rule_matched per match, and the two steps.
    w.bus.flush();
    let kinds: Vec<String> = w
        .bus
        .store()
        .query(&EventQuery {
            category: Some(Category::Alarm),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .events
        .into_iter()
        .rev()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "alarm.raised").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "alarm.rule_matched").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["alarm.acknowledged", "alarm.closed"]
    );
    // Live subscribers see them as events.
    let mut seen = Vec::new();
    while let Ok(Some(Live::Event(e))) =
        tokio::time::timeout(Duration::from_millis(200), live.next()).await
    {
        seen.push(e.event.kind.clone());
    }
    assert!(seen.iter().any(|k| k == "alarm.raised"), "{seen:?}");
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn the_rule_test_runs_nothing_and_rules_can_be_replaced() {
    let w = world();
    let fired = w.alarms.test(dot1x("sw-1", "lobby")).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].rule, "port-security");
    assert_eq!(fired[0].actions.len(), 3);
    assert!(w.alarms.test(dot1x("sw-1", "gate")).unwrap().is_empty());
    let admin = user(Role::Admin, CameraScope::All);
    assert!(
        w.alarms
            .list(&admin, AlarmQuery::default())
            .unwrap()
            .alarms
            .is_empty()
    );
    let mut bad = dot1x("sw-1", "lobby");
    bad.kind = "Not A Kind".into();
    assert!(w.alarms.test(bad).is_err());
    w.alarms.set_rules(&[]).unwrap();
    assert!(w.alarms.test(dot1x("sw-1", "lobby")).unwrap().is_empty());
    let mut broken = rules();
    broken[0].regex = Some("(".into());
    assert!(w.alarms.set_rules(&broken).is_err());
}

/// Sum of the counts of every alarm (how many matches the rules raised or counted in).
fn matches_counted(w: &World) -> u64 {
    let admin = user(Role::Admin, CameraScope::All);
    w.alarms
        .list(
            &admin,
            AlarmQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .unwrap()
        .alarms
        .iter()
        .map(|a| a.count)
        .sum()
}

/// Like [`until`] for up to `seconds`.
async fn until_within(seconds: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(seconds);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {seconds} s waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_rule_queue_loses_no_event() {
    use std::sync::atomic::Ordering::Relaxed;
    const N: u64 = 30_000;
    let w = world();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = w.alarms.spawn_rules(async move {
        let _ = stopped.await;
    });
    // Far more than the live queue and the rule queue hold, faster than the worker acts.
    for i in 0..N {
        w.bus
            .publish(dot1x(&format!("sw-{}", i % 50), "lobby"))
            .unwrap();
    }
    w.bus.flush();
    until_within(120, "every match counted into an alarm", || {
        matches_counted(&w) == N
    })
    .await;
    let s = w.alarms.stats();
    until("every bookmark and forward", || {
        s.evaluated.load(Relaxed) == N
    })
    .await;
    assert!(
        s.deferred.load(Relaxed) > 0,
        "the flood overflowed the queue: the worker read events back from the database"
    );
    assert_eq!(s.fired.load(Relaxed), N);
    assert_eq!(s.failed.load(Relaxed), 0);
    assert_eq!(s.dropped.load(Relaxed), 0);
    let _ = stop.send(());
    task.await.unwrap();
    w.bus.flush();
    assert_eq!(w.bus.stats().dropped.load(Relaxed), 0);
    let count = |kind: &str| {
        w.bus
            .store()
            .query(&EventQuery {
                kinds: vec![kind.into()],
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .events
            .len()
    };
    assert_eq!(count("alarm.raised"), 50, "one alarm per source");
    assert_eq!(count("rules.dropped"), 0);
    let bookmarks = w
        .alarms
        .bookmarks(
            &user(Role::Admin, CameraScope::All),
            BookmarkQuery {
                camera: Some("lobby".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(bookmarks.bookmarks.len(), 10);
    assert!(bookmarks.bookmarks.iter().all(|b| b.alarm_id.is_some()));
}

/// The rules start with the events stored from their first start on (history is not
/// evaluated), and after a stop resume where they stopped: events stored meanwhile fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_resume_where_they_stopped() {
    let w = world();
    w.bus.publish(dot1x("sw-old", "lobby")).unwrap();
    w.bus.flush();
    let spawn = || {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = w.alarms.spawn_rules(async move {
            let _ = stopped.await;
        });
        (stop, task)
    };
    let (stop, task) = spawn();
    w.bus.publish(dot1x("sw-1", "lobby")).unwrap();
    until("the first match", || matches_counted(&w) == 1).await;
    let _ = stop.send(());
    task.await.unwrap();
    for _ in 0..3 {
        w.bus.publish(dot1x("sw-1", "lobby")).unwrap();
    }
    w.bus.flush();
    assert_eq!(
        matches_counted(&w),
        1,
        "nothing acts while the rules are stopped"
    );
    let (stop, task) = spawn();
    until("the matches stored while stopped", || {
        matches_counted(&w) == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        matches_counted(&w),
        4,
        "each event once; the one before the first start never"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

const LOCK_RULES: &str = r#"
data_dir = "/unused"

[[rules]]
name = "door-lock"
kinds = ["external.door"]
cameras = ["lobby"]
lock = { pre_seconds = 10, post_seconds = 60, days = 1 }
"#;

/// A burst of matches (one every 5 s for 150 s, post-event window 60 s) locks every match's
/// range, in one lock per post-event window rather than one per match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_matches_locks_every_range_with_few_locks() {
    const S: i64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::start(Arc::new(EventStore::open(dir.path()).unwrap()), "srv").unwrap();
    let access =
        Arc::new(Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap());
    let rules = vigil_config::Config::parse(LOCK_RULES, std::path::Path::new("vigil.toml"))
        .unwrap()
        .rules;
    let alarms = Alarms::open(bus.clone(), access, &rules).unwrap();
    let store = Arc::new(vigil_media::store::Store::init(dir.path()).unwrap());
    store
        .add_camera(&vigil_media::store::NewCamera {
            name: "lobby".into(),
            url: "rtsp://127.0.0.1:9/lobby".into(),
            ..Default::default()
        })
        .unwrap();
    // The locks' ledger records are what is under test only in that they are written; an
    // unsigned ledger needs no signing key here (signing is covered by the end-to-end test).
    let evidence = Arc::new(
        vigil_media::evidence::Evidence::new(
            dir.path(),
            vigil_media::evidence::Signing::OffForBenchmark,
        )
        .unwrap(),
    );
    alarms.attach_recording(store.clone(), evidence);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let _task = alarms.spawn_rules(async move {
        let _ = stopped.await;
    });

    let t0 = vigil_events::model::now_us() - 600 * S;
    let times: Vec<i64> = (0..31).map(|i| t0 + i * 5 * S).collect();
    for &t in &times {
        bus.publish(NewEvent {
            time_us: t,
            source: Source::new(SourceKind::External, "acs-1"),
            kind: "external.door".into(),
            category: Category::External,
            severity: Severity::Warning,
            message: "door forced".into(),
            camera: Some("lobby".into()),
            attributes: Default::default(),
        })
        .unwrap();
    }
    let last = *times.last().unwrap();
    let covered = |locks: &[vigil_media::store::LockRow], from: i64, to: i64| {
        // The union of the locks covers [from, to] without a hole.
        let mut at = from;
        let mut spans: Vec<(i64, i64)> = locks.iter().map(|l| (l.from_us, l.to_us)).collect();
        spans.sort();
        for (a, b) in spans {
            if a <= at && b > at {
                at = b;
            }
        }
        at >= to
    };
    until("the last match's range locked", || {
        let locks = vigil_app::locks::list(&store, "lobby", None).unwrap();
        covered(&locks, last - 10 * S, last + 60 * S)
    })
    .await;
    let locks = vigil_app::locks::list(&store, "lobby", None).unwrap();
    for &t in &times {
        assert!(
            covered(&locks, t - 10 * S, t + 60 * S),
            "the match at {t} is not locked: {locks:?}"
        );
    }
    assert!(
        locks.len() <= 4,
        "31 matches within 150 s make at most one lock per 60 s window: {} locks",
        locks.len()
    );
    assert!(locks.iter().all(|l| l.created_by == "rule:door-lock"));
}
