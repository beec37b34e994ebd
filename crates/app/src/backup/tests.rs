use super::*;

const PASS: &str = "correct horse battery staple";

fn installation(tmp: &Path) -> Config {
    let data = tmp.join("data");
    let cfg = crate::setup::init(&data, &data.join("vigil.toml"), false).unwrap();
    crate::setup::create_first_admin(&cfg, "admin", None).unwrap();
    cfg
}

fn actor() -> Actor {
    crate::audit::cli_actor()
}

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned())
}

#[test]
fn a_backup_restores_users_keys_certificates_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = installation(tmp.path());
    let config = cfg.data_dir.join("vigil.toml");
    let out = tmp.path().join("site.vbk");
    let summary = create(&config, &out, &pass(PASS), &actor()).unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(summary.bytes, fs::metadata(&out).unwrap().len());
    let names: Vec<_> = summary
        .manifest
        .databases
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["vigil.db", "access.db"]);
    // No scratch or partial file is left next to the output.
    let mut left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["data", "site.vbk"]);

    let restored = tmp.path().join("restored");
    let r = restore(&out, &restored, &pass(PASS), &actor()).unwrap();
    assert_eq!((r.users, r.cameras), (1, 0));
    assert_eq!(r.manifest, summary.manifest);
    for file in [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/server.key",
        "keys/secrets.key",
        "keys/signing/signing.key",
        "keys/signing/signing.crt",
    ] {
        let a = fs::read(cfg.data_dir.join(file)).unwrap();
        let b = fs::read(restored.join(file)).unwrap();
        assert_eq!(a, b, "{file}");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        if file.ends_with(".key") {
            assert_eq!(mode(&restored.join(file)), 0o600, "{file}");
        }
    }
    // Both ends are in the audit logs, by the person who ran them.
    let last_entry = |dir: &Path| {
        let access =
            vigil_access::Access::open(&dir.join("access.db"), Default::default()).unwrap();
        access
            .audit_query(&vigil_access::AuditQuery::default())
            .unwrap()
            .into_iter()
            .max_by_key(|e| e.seq)
            .unwrap()
    };
    let made = last_entry(&cfg.data_dir);
    assert_eq!(made.kind, AuditKind::Export);
    assert_eq!(made.detail["format"], "backup");
    assert_eq!(made.user.as_deref(), Some(actor().name.as_str()));
    let back = last_entry(&restored);
    assert_eq!(back.kind, AuditKind::ConfigChanged);
    assert_eq!(back.detail["action"], "restored_from_backup");
    assert_eq!(back.detail["backup_of"], cfg.data_dir.display().to_string());
    let restored_cfg = Config::load(&r.config).unwrap();
    assert_eq!(restored_cfg.data_dir, restored.canonicalize().unwrap());
    assert!(restored.join("video").is_dir());
}

#[test]
fn restore_refuses_a_directory_with_anything_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = installation(tmp.path());
    let out = tmp.path().join("b.vbk");
    create(
        &cfg.data_dir.join("vigil.toml"),
        &out,
        &pass(PASS),
        &actor(),
    )
    .unwrap();
    let e = restore(&out, &cfg.data_dir, &pass(PASS), &actor()).unwrap_err();
    assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
    assert!(e.to_string().contains("not empty"), "{e}");
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    restore(&out, &empty, &pass(PASS), &actor()).unwrap();
}

#[test]
fn wrong_passphrase_and_damage_are_clear_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = installation(tmp.path());
    let out = tmp.path().join("b.vbk");
    create(
        &cfg.data_dir.join("vigil.toml"),
        &out,
        &pass(PASS),
        &actor(),
    )
    .unwrap();
    let target = tmp.path().join("r");

    let e = restore(&out, &target, &pass("not the passphrase"), &actor()).unwrap_err();
    assert!(matches!(
        e,
        BackupError::Format(FormatError::WrongPassphrase)
    ));
    assert_eq!(e.code(), "wrong_passphrase");
    assert!(e.to_string().starts_with("wrong passphrase"), "{e}");
    assert!(!target.exists());

    let mut bytes = fs::read(&out).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let damaged = tmp.path().join("damaged.vbk");
    fs::write(&damaged, &bytes).unwrap();
    let e = restore(&damaged, &target, &pass(PASS), &actor()).unwrap_err();
    assert!(
        matches!(e, BackupError::Format(FormatError::Damaged(_))),
        "{e}"
    );
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(
        !target.exists(),
        "a failed restore leaves its directory behind"
    );

    let cut = tmp.path().join("cut.vbk");
    fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let e = restore(&cut, &target, &pass(PASS), &actor()).unwrap_err();
    assert!(
        matches!(e, BackupError::Format(FormatError::Truncated)),
        "{e}"
    );

    let e = restore(
        &cfg.data_dir.join("vigil.toml"),
        &target,
        &pass(PASS),
        &actor(),
    )
    .unwrap_err();
    assert!(
        matches!(e, BackupError::Format(FormatError::NotABackup)),
        "{e}"
    );
}

#[test]
fn a_short_passphrase_or_an_existing_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = installation(tmp.path());
    let config = cfg.data_dir.join("vigil.toml");
    let out = tmp.path().join("b.vbk");
    let e = create(&config, &out, &pass("short"), &actor()).unwrap_err();
    assert!(matches!(e, BackupError::WeakPassphrase), "{e}");
    assert!(!out.exists());
    fs::write(&out, b"keep me").unwrap();
    let e = create(&config, &out, &pass(PASS), &actor()).unwrap_err();
    assert!(matches!(e, BackupError::OutputExists(_)), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn only_what_a_backup_holds_is_restored() {
    let ok = |p: &str| entry_destination(Path::new(p), tar::EntryType::Regular);
    assert_eq!(ok("manifest.json").unwrap(), Entry::Manifest);
    assert_eq!(ok("vigil.toml").unwrap(), Entry::Config);
    assert_eq!(
        ok("data/keys/signing/signing.key").unwrap(),
        Entry::Data("keys/signing/signing.key".into())
    );
    assert_eq!(
        ok("data/access.db").unwrap(),
        Entry::Data("access.db".into())
    );
    for bad in [
        "../etc/passwd",
        "/etc/passwd",
        "data/../vigil.toml",
        "data/keys/../../x",
        "data/keys",
        "data/video/cam-1/0000000000000001.mp4",
        "data/vigil.db/x",
        "data/vigil.lock",
        "data",
        "data/",
        "other.txt",
    ] {
        assert!(
            matches!(ok(bad), Err(BackupError::BadEntry(_))),
            "{bad} was accepted"
        );
    }
    for kind in [
        tar::EntryType::Symlink,
        tar::EntryType::Link,
        tar::EntryType::Directory,
        tar::EntryType::Char,
    ] {
        assert!(entry_destination(Path::new("data/keys/x"), kind).is_err());
    }
}

#[test]
fn inspect_wants_the_manifest_first_and_once() {
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            append_bytes(&mut b, name, data, 0o600).unwrap();
        }
        b.into_inner().unwrap()
    }
    let manifest = serde_json::to_vec(&Manifest {
        format: MANIFEST_FORMAT,
        vigil_version: "0.1.0".into(),
        created: 0,
        data_dir: "/var/lib/vigil".into(),
        databases: vec![("vigil.db".into(), 2)],
        management_database: None,
    })
    .unwrap();
    let good = tar_of(&[("manifest.json", &manifest), ("data/vigil.db", b"x")]);
    assert_eq!(inspect(&good[..]).unwrap().len(), 2);
    // An empty tar stream (found by the fuzz target): no manifest.
    let e = inspect(&tar_of(&[])[..]).unwrap_err();
    assert!(matches!(e, BackupError::BadManifest(_)), "{e}");
    let e = inspect(&tar_of(&[("data/vigil.db", b"x")])[..]).unwrap_err();
    assert!(matches!(e, BackupError::BadManifest(_)), "{e}");
    let e = inspect(&tar_of(&[("manifest.json", &manifest), ("manifest.json", &manifest)])[..])
        .unwrap_err();
    assert!(matches!(e, BackupError::BadManifest(_)), "{e}");
    let e = inspect(&tar_of(&[("manifest.json", b"{\"format\": 2}")])[..]).unwrap_err();
    assert!(matches!(e, BackupError::BadManifest(_)), "{e}");
    let newer = String::from_utf8(manifest.clone())
        .unwrap()
        .replace("\"format\":1", "\"format\":9");
    let e = inspect(&tar_of(&[("manifest.json", newer.as_bytes())])[..]).unwrap_err();
    assert!(e.to_string().contains("format 9"), "{e}");
}
