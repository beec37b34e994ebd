use std::os::unix::fs::PermissionsExt as _;

use vigil_access::AccessConfig;

use super::*;

#[test]
fn merge_patch_follows_rfc7396() {
    let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "arr": [1, 2]});
    merge_patch(
        &mut t,
        &json!({"a": "z", "c": {"f": null}, "arr": [3], "n": {"x": 1}}),
    );
    assert_eq!(
        t,
        json!({"a": "z", "c": {"d": "e"}, "arr": [3], "n": {"x": 1}})
    );
}

#[test]
fn editable_settings_round_trip_through_config() {
    let mut cfg = Config::with_data_dir("/var/lib/vigil");
    cfg.access.ids.block = BlockSetting::For(Duration::from_secs(1800));
    cfg.retention.max_age = Some(Duration::from_secs(30 * 86400));
    cfg.access.webhook = Some(WebhookSettings {
        url: "https://alerts.example.net/hook".into(),
        secret_file: Some("/etc/vigil/k".into()),
        ca_file: None,
        allow_plaintext_http: false,
    });
    let back = EditableSettings::of(&cfg).merge_into(&cfg).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(EditableSettings::of(&cfg).access.ids.block, "30m");
    assert_eq!(
        EditableSettings::of(&cfg).access.session_idle_timeout,
        "15m"
    );
}

#[test]
fn host_names_are_checked() {
    for ok in [
        "localhost",
        "cam.example.net",
        "*.example.net",
        "10.0.0.5",
        "::1",
        "[::1]",
    ] {
        assert!(check_hostname(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a b",
        "-x.example",
        "x..y",
        "*.net",
        "ex_ample.com",
        &"a".repeat(64),
    ] {
        assert!(check_hostname(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn webhook_urls_are_checked() {
    let w = |url: &str, plain: bool| WebhookSettings {
        url: url.into(),
        allow_plaintext_http: plain,
        ..Default::default()
    };
    assert!(check_webhook(&w("https://alerts.example.net/x", false)).is_ok());
    assert!(check_webhook(&w("http://10.0.0.1/x", true)).is_ok());
    for bad in [
        w("http://10.0.0.1/x", false),
        w("ftp://x", false),
        w("https://user:pw@x/", false),
        w("https:///x", false),
        w("https://x/a b", false),
    ] {
        let e = check_webhook(&bad).unwrap_err();
        assert!(e.contains("https://"), "{}: {e}", bad.url);
        assert!(!e.contains(":pw@"), "credentials echoed: {e}");
    }
    let mut rel = w("https://x/", false);
    rel.secret_file = Some("key".into());
    assert!(check_webhook(&rel).unwrap_err().contains("absolute"));
}

#[test]
fn audit_summary_keeps_only_the_webhook_origin() {
    let c = Change {
        setting: "access.webhook".into(),
        before: Value::Null,
        after: json!({"url": "https://hooks.example.net/services/T0/B0/SECRET?x=1"}),
        listeners_restart: false,
        certificate_reissue: false,
    };
    let s = audit_summary(&[c]).to_string();
    assert!(!s.contains("SECRET"), "{s}");
    assert!(s.contains("https://hooks.example.net/"), "{s}");
}

#[test]
fn invalid_patches_name_the_setting_and_refusals_keep_their_codes() {
    let cfg = Config::with_data_dir("/var/lib/vigil");
    let e = staged_from_patch(&cfg, &json!([1])).unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::InvalidInput, "bad_request")
    );
    let e = staged_from_patch(&cfg, &json!({"access": {"nope": 1}})).unwrap_err();
    assert!(e.to_string().contains("setting `access.nope`"), "{e}");
    assert!(
        matches!(&e, SettingsError::UnknownSetting { setting, .. } if setting == "access.nope"),
        "{e}"
    );
    assert_eq!(e.code(), "bad_request");
    let e = staged_from_patch(&cfg, &json!({"management": {"https": [], "http": []}})).unwrap_err();
    assert_eq!(e.code(), "unreachable");
    assert!(e.to_string().contains("at least one HTTPS listener"), "{e}");
    let e = staged_from_patch(&cfg, &json!({"management": {"hostnames": ["a b"]}})).unwrap_err();
    assert!(e.to_string().starts_with("management.hostnames: "), "{e}");
}

// ---- apply through fake ports -----------------------------------------------------------

/// Listeners that only record the plans they were asked for; `busy` addresses cannot bind.
#[derive(Default)]
struct FakeListeners {
    busy: Vec<SocketAddr>,
    applied: Mutex<Vec<Vec<SocketAddr>>>,
}

impl ListenerControl for FakeListeners {
    type Plan = Vec<SocketAddr>;
    type Report = Vec<String>;

    fn plan(&self, cfg: &Config) -> Vec<SocketAddr> {
        let m = &cfg.management;
        m.https.iter().chain(&m.http).map(|l| l.bind).collect()
    }

    async fn apply(&self, plan: &Vec<SocketAddr>) -> Result<Vec<String>, ListenerError> {
        if let Some(a) = plan.iter().find(|a| self.busy.contains(a)) {
            return Err(ListenerError::BindFailed(format!(
                "cannot listen on {a}: address in use (nothing was changed)"
            )));
        }
        self.applied.lock().unwrap().push(plan.clone());
        Ok(plan.iter().map(|a| format!("https://{a}")).collect())
    }
}

/// A certificate that records the host names it was reissued for.
#[derive(Default)]
struct FakeCertificate {
    reissued: Mutex<Vec<Vec<String>>>,
}

impl CertificateRotation for FakeCertificate {
    async fn reissue(&self, hostnames: Vec<String>) -> Result<Rotation, CertificateError> {
        self.reissued.lock().unwrap().push(hostnames);
        Ok(Rotation::Reissued)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    settings: Settings,
    access: Arc<Access>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = Config::with_data_dir(&data);
    let path = dir.path().join("vigil.toml");
    std::fs::write(&path, cfg.to_commented_toml()).unwrap();
    let access = Arc::new(Access::open(&data.join("access.db"), AccessConfig::default()).unwrap());
    let settings = Settings::new(path.clone(), cfg, access.clone());
    Fixture {
        dir,
        path,
        settings,
        access,
    }
}

fn actor() -> Actor {
    Actor {
        name: "admin".into(),
        source: "127.0.0.1".into(),
    }
}

#[tokio::test]
async fn a_listener_that_cannot_bind_changes_nothing() {
    let f = fixture();
    let before = std::fs::read_to_string(&f.path).unwrap();
    let saved = f.settings.in_effect();
    let busy: SocketAddr = "127.0.0.1:18443".parse().unwrap();
    let patch = json!({
        "management": {"https": [{"bind": busy.to_string()}]},
        "access": {"session_idle_timeout": "30m"},
    });
    let staged = f.settings.stage(&patch, &actor()).await.unwrap();
    assert!(staged.listeners_restart());
    let listeners = FakeListeners {
        busy: vec![busy],
        ..Default::default()
    };
    let certificate = FakeCertificate::default();
    let e = f
        .settings
        .apply(&listeners, &certificate, &actor())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Conflict, "bind_failed"));
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&f.path).unwrap(),
        before,
        "file unchanged"
    );
    assert_eq!(f.settings.in_effect(), saved, "nothing in effect changed");
    assert_eq!(f.settings.pending(), staged.pending, "still staged");
    assert_eq!(
        f.access.config().session.idle_timeout,
        Duration::from_secs(15 * 60)
    );
    assert!(listeners.applied.lock().unwrap().is_empty());
    assert!(certificate.reissued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn apply_saves_0600_and_reissues_only_for_new_host_names() {
    let f = fixture();
    let listeners = FakeListeners::default();
    let certificate = FakeCertificate::default();
    let new_bind: SocketAddr = "127.0.0.1:18443".parse().unwrap();

    // Listeners and a session setting: rebound, saved, no certificate.
    let patch = json!({
        "management": {"https": [{"bind": new_bind.to_string(), "label": "LAN"}]},
        "access": {"session_idle_timeout": "30m"},
    });
    f.settings.stage(&patch, &actor()).await.unwrap();
    let done = f
        .settings
        .apply(&listeners, &certificate, &actor())
        .await
        .unwrap();
    assert_eq!(done.changes.len(), 2);
    assert_eq!(done.listeners, Some(vec![format!("https://{new_bind}")]));
    assert!(!done.certificate_reissued);
    assert!(certificate.reissued.lock().unwrap().is_empty());
    assert_eq!(*listeners.applied.lock().unwrap(), vec![vec![new_bind]]);
    let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let loaded = Config::load(&f.path).unwrap();
    assert_eq!(loaded, f.settings.in_effect());
    assert_eq!(loaded, done.settings);
    assert_eq!(f.settings.pending(), None);
    assert_eq!(
        f.access.config().session.idle_timeout,
        Duration::from_secs(30 * 60)
    );

    // Host names: the certificate is reissued for them; the listeners stay.
    let patch = json!({"management": {"hostnames": ["cam.example.net", "10.0.0.5"]}});
    f.settings.stage(&patch, &actor()).await.unwrap();
    let done = f
        .settings
        .apply(&listeners, &certificate, &actor())
        .await
        .unwrap();
    assert!(done.certificate_reissued);
    assert!(done.listeners.is_none());
    assert_eq!(
        *certificate.reissued.lock().unwrap(),
        vec![vec!["cam.example.net".to_owned(), "10.0.0.5".to_owned()]]
    );
    assert_eq!(listeners.applied.lock().unwrap().len(), 1);
    assert_eq!(
        Config::load(&f.path).unwrap().management.hostnames,
        ["cam.example.net", "10.0.0.5"]
    );

    // Each step is in the audit log.
    let entries = f
        .access
        .audit_query(&vigil_access::AuditQuery {
            kind: Some(AuditKind::ConfigChanged),
            ..Default::default()
        })
        .unwrap();
    let actions: Vec<_> = entries
        .iter()
        .filter_map(|e| e.detail["action"].as_str())
        .collect();
    assert_eq!(actions, ["stage", "apply", "stage", "apply"]);
}

#[tokio::test]
async fn a_failed_save_puts_listeners_and_certificate_back() {
    let f = fixture();
    let listeners = FakeListeners::default();
    let certificate = FakeCertificate::default();
    let saved = f.settings.in_effect();
    let patch = json!({"management": {
        "https": [{"bind": "127.0.0.1:18443"}],
        "hostnames": ["cam.example.net"],
    }});
    f.settings.stage(&patch, &actor()).await.unwrap();
    // A directory where the file should be: the rename cannot replace it.
    std::fs::remove_file(&f.path).unwrap();
    std::fs::create_dir(&f.path).unwrap();
    let e = f
        .settings
        .apply(&listeners, &certificate, &actor())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Internal, "internal"));
    let old_plan = listeners.plan(&saved);
    let applied = listeners.applied.lock().unwrap().clone();
    assert_eq!(applied.last(), Some(&old_plan), "listeners restored");
    let names = certificate.reissued.lock().unwrap().clone();
    assert_eq!(names.last(), Some(&saved.management.hostnames));
    assert_eq!(f.settings.in_effect(), saved);
    assert!(f.settings.pending().is_some(), "still staged");
    drop(f.dir);
}

#[tokio::test]
async fn apply_without_staged_settings_is_a_conflict() {
    let f = fixture();
    let e = f
        .settings
        .apply(
            &FakeListeners::default(),
            &FakeCertificate::default(),
            &actor(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Conflict, "nothing_pending")
    );
    let r = f.settings.restore(&actor()).await.unwrap();
    assert!(r.discarded.is_empty());
}
