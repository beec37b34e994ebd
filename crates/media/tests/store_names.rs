//! Camera lookups by name never reach a second camera whose id equals that name.

use vigil_media::store::{NewCamera, Store};

#[test]
fn a_name_equal_to_another_cameras_id_changes_only_the_named_camera() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    let first = store
        .add_camera(&NewCamera {
            name: "first".into(),
            url: "rtsp://127.0.0.1:8554/a".into(),
            ..Default::default()
        })
        .unwrap();
    let second = match store.add_camera(&NewCamera {
        name: first.id.clone(),
        url: "rtsp://127.0.0.1:8554/b".into(),
        ..Default::default()
    }) {
        Ok(c) => c,
        // Names that look like ids are refused: then the ambiguity cannot arise at all.
        Err(e) => {
            eprintln!("refused: {e}");
            return;
        }
    };
    assert_eq!(store.camera(&first.id).unwrap().id, second.id, "name wins");
    store.set_camera_enabled(&first.id, false).unwrap();
    store
        .set_camera_retention(&first.id, Some(60), None)
        .unwrap();
    let a = store.camera("first").unwrap();
    assert!(a.enabled, "the other camera must be untouched");
    assert_eq!(a.max_age_secs, None);
    let b = store.camera(&second.name).unwrap();
    assert!(!b.enabled);
    assert_eq!(b.max_age_secs, Some(60));
    store.remove_camera(&first.id, false).unwrap();
    assert!(
        store.camera("first").is_ok(),
        "removing by name kept the other camera"
    );
}

#[test]
fn dot_and_dot_dot_are_refused_as_camera_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    for name in [".", ".."] {
        let err = store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:8554/a".into(),
                ..Default::default()
            })
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(&format!("camera name '{name}' is not allowed"))
                && err.contains("parent directory"),
            "{name}: {err}"
        );
        assert!(
            store.camera(name).is_err(),
            "{name} was stored despite the error"
        );
    }
    // Dots inside a name stay allowed: only the two directory names are special.
    for name in ["...", ".a", "cam.1", "a..b"] {
        store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:8554/a".into(),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
