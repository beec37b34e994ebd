//! Every refusal of `vigil.toml` names the key and the line to edit, and the files that
//! `vigil init` writes keep loading.

use std::path::Path;

use vigil_config::{Config, ConfigError};

fn refuse(text: &str) -> String {
    match Config::parse(text, Path::new("vigil.toml")) {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn accept(text: &str) -> Config {
    Config::parse(text, Path::new("vigil.toml")).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

/// Asserts that `err` contains every piece in `want`.
fn assert_says(err: &str, want: &[&str]) {
    for w in want {
        assert!(err.contains(w), "missing {w:?} in: {err}");
    }
}

/// The 1-based line of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
        + 1
}

#[test]
fn range_errors_name_key_value_line_and_the_allowed_range() {
    for (text, want) in [
        (
            "data_dir = \"d\"\n\n[storage]\nsegment_seconds = 1\n",
            &[
                "`storage.segment_seconds` = 1 on line 4 is too small",
                "2..=3600",
            ][..],
        ),
        (
            "data_dir = \"d\"\n[storage]\nsegment_seconds = 4000\n",
            &[
                "`storage.segment_seconds` = 4000 on line 3 is too large",
                "2..=3600",
            ],
        ),
        (
            "data_dir = \"d\"\n[ingest]\ninactivity_timeout = \"0s\"\n",
            &[
                "`ingest.inactivity_timeout` = \"0s\" on line 3",
                "at least 1s",
            ],
        ),
        (
            "data_dir = \"d\"\n[ingest]\nmax_backoff = \"500ms\"\n",
            &["`ingest.max_backoff` = \"500ms\" on line 3", "at least 1s"],
        ),
        (
            "data_dir = \"d\"\n[access]\nsession_idle_timeout = \"10s\"\n",
            &[
                "`access.session_idle_timeout` = \"10s\" on line 3",
                "at least 1m",
            ],
        ),
        (
            "data_dir = \"d\"\n[access.ids]\nnotification_threshold = 3\n",
            &[
                "`access.ids.notification_threshold` = 3 on line 3",
                "at least 5",
            ],
        ),
        (
            "data_dir = \"d\"\n[access.ids]\ntimeout = \"0s\"\n",
            &["`access.ids.timeout` = \"0s\" on line 3", "at least 1s"],
        ),
        (
            "# comment\ndata_dir = \"\"\n",
            &["`data_dir` on line 2 is empty"],
        ),
        (
            "data_dir = \"d\"\n[access.webhook]\nurl = \" \"\n",
            &["`access.webhook.url` on line 3 is empty", "https://"],
        ),
        (
            "data_dir = \"d\"\n[metrics]\nbind = \"127.0.0.1:0\"\n",
            &[
                "`metrics.bind` = \"127.0.0.1:0\" on line 3 uses port 0",
                "fixed port",
            ],
        ),
        (
            "data_dir = \"d\"\n[events]\nenabled = true\nudp = { bind = \"0.0.0.0:0\" }\n",
            &["`events.udp.bind` = \"0.0.0.0:0\" on line 4 uses port 0"],
        ),
    ] {
        let err = refuse(text);
        assert_says(&err, want);
        assert!(err.starts_with("config file vigil.toml: "), "{err}");
    }
}

#[test]
fn a_key_left_at_its_default_is_named_as_such() {
    // The lifetime is not in the file; the message must not invent a line for it.
    let err = refuse("data_dir = \"d\"\n[access]\nsession_idle_timeout = \"13h\"\n");
    assert_says(
        &err,
        &[
            "`access.session_absolute_lifetime` = \"12h\" (not set under `access` on line 2, so the default applies)",
            "is shorter than `access.session_idle_timeout` = \"13h\" on line 3",
        ],
    );
    let err = refuse("data_dir = \"d\"\n[access.webhook]\nallow_plaintext_http = true\n");
    assert_says(
        &err,
        &[
            "`access.webhook.url` (not set under `access.webhook` on line 2, so the default applies) is empty",
        ],
    );
}

#[test]
fn both_lines_of_a_combination_are_named() {
    let err = refuse(
        "data_dir = \"d\"\n[access]\nsession_idle_timeout = \"2h\"\nsession_absolute_lifetime = \"1h\"\n",
    );
    assert_says(
        &err,
        &[
            "`access.session_absolute_lifetime` = \"1h\" on line 4 is shorter than",
            "`access.session_idle_timeout` = \"2h\" on line 3",
        ],
    );
}

#[test]
fn duplicate_listeners_name_both_lines() {
    let text = "data_dir = \"d\"\n\
                [[management.https]]\n\
                bind = \"0.0.0.0:8443\"\n\
                [[management.https]]\n\
                label = \"Internet\"\n\
                bind = \"0.0.0.0:8443\"\n";
    assert_says(
        &refuse(text),
        &[
            "`management.https[1].bind` = \"0.0.0.0:8443\" on line 6",
            "another listener, `management.https[0].bind` = \"0.0.0.0:8443\" on line 3",
            "its own port",
        ],
    );
    // Inline tables in two sections.
    let text = "data_dir = \"d\"\n[recording]\napi = { bind = \"0.0.0.0:7000\" }\n\n[events]\nenabled = true\ntcp = { bind = \"0.0.0.0:7000\" }\n";
    assert_says(
        &refuse(text),
        &[
            "`events.tcp.bind` = \"0.0.0.0:7000\" on line 7",
            "`recording.api.bind` = \"0.0.0.0:7000\" on line 3",
        ],
    );
    // A clash with a listener the file does not mention points at the default.
    assert_says(
        &refuse("data_dir = \"d\"\n[recording]\napi = { bind = \"0.0.0.0:8443\" }\n"),
        &[
            "`recording.api.bind` = \"0.0.0.0:8443\" on line 3",
            "`management.https[0].bind` = \"0.0.0.0:8443\" (not in the file, so the default applies)",
        ],
    );
}

#[test]
fn a_wildcard_and_a_specific_address_on_one_port_clash() {
    let text = "data_dir = \"d\"\n[[management.https]]\nbind = \"0.0.0.0:8443\"\n[[management.https]]\nbind = \"10.0.0.2:8443\"\n";
    assert_says(
        &refuse(text),
        &[
            "`management.https[1].bind` = \"10.0.0.2:8443\" on line 5",
            "`management.https[0].bind` = \"0.0.0.0:8443\" on line 3",
            "wildcard",
        ],
    );
    // Different specific addresses, another protocol or another family can share a port.
    let ok = accept(
        "data_dir = \"d\"\n\
         [[management.https]]\nbind = \"10.0.0.2:8443\"\n\
         [[management.https]]\nbind = \"10.0.0.3:8443\"\n\
         [[management.https]]\nbind = \"[::]:8443\"\n\
         [events]\ntcp = { bind = \"0.0.0.0:1234\" }\nudp = { bind = \"0.0.0.0:1234\" }\n\
         allowed_sources = [\"10.0.0.0/8\"]\n",
    );
    assert_eq!(ok.management.https.len(), 3);
}

#[test]
fn management_without_a_listener_is_refused_with_the_line_to_edit() {
    // A written [management] table without https gets no hidden listener.
    let err = refuse("data_dir = \"d\"\n\n[management]\nhostnames = [\"nvr.example\"]\n");
    assert_says(
        &err,
        &[
            "neither an HTTPS nor an HTTP listener",
            "`management` table on line 3",
            "[[management.https]]",
            "management.enabled = false",
        ],
    );
    // The same with a dotted key instead of a table header.
    assert_says(
        &refuse("data_dir = \"d\"\nmanagement.enabled = true\n"),
        &["`management` table on line 2"],
    );
    // An explicitly empty list.
    assert_says(
        &refuse("data_dir = \"d\"\n[management]\nhttps = []\n"),
        &["`management.https` on line 3 is empty"],
    );
}

#[test]
fn management_listeners_are_exactly_what_the_file_lists() {
    // HTTP only: the written table decides, no HTTPS port appears from the defaults.
    let c =
        accept("data_dir = \"d\"\n[management]\n[[management.http]]\nbind = \"127.0.0.1:8080\"\n");
    assert!(c.management.https.is_empty(), "{:?}", c.management.https);
    assert_eq!(c.management.http[0].bind.port(), 8080);
    // A disabled role needs no listener.
    let c = accept("data_dir = \"d\"\n[management]\nenabled = false\n");
    assert!(
        c.listeners()
            .iter()
            .all(|(role, ..)| !role.starts_with("management"))
    );
    // Without a management table at all, the built-in listener applies.
    let c = accept("data_dir = \"d\"\n");
    assert_eq!(c.management.https.len(), 1);
    assert_eq!(c.management.https[0].bind, "0.0.0.0:8443".parse().unwrap());
}

#[test]
fn the_file_vigil_init_writes_validates_and_errors_in_it_point_at_its_lines() {
    let dir = std::env::temp_dir().join(format!("vigil-config-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vigil.toml");
    // `vigil init` writes exactly this for a data directory.
    let written = Config::with_data_dir(&dir);
    std::fs::write(&path, written.to_commented_toml()).unwrap();
    let loaded = Config::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded, written);
    assert_eq!(loaded.management.https[0].bind.port(), 8443);

    // Line numbers count the comments and blank lines of the real file.
    let text = written.to_commented_toml();
    let line = line_of(&text, "segment_seconds = ");
    let broken = text.replace("segment_seconds = 60", "segment_seconds = 1");
    assert_says(
        &refuse(&broken),
        &[&format!(
            "`storage.segment_seconds` = 1 on line {line} is too small"
        )],
    );
    let line = line_of(&text, "session_idle_timeout = ");
    let broken = text.replace(
        "session_idle_timeout = \"15m\"",
        "session_idle_timeout = \"10s\"",
    );
    assert_says(
        &refuse(&broken),
        &[&format!(
            "`access.session_idle_timeout` = \"10s\" on line {line}"
        )],
    );
    let line = line_of(&text, "bind = \"0.0.0.0:8443\"");
    let broken = text.replace("bind = \"0.0.0.0:8443\"", "bind = \"0.0.0.0:9443\"");
    assert_says(
        &refuse(&broken),
        &[&format!(
            "`management.https[0].bind` = \"0.0.0.0:9443\" on line {line}"
        )],
    );
}

#[test]
fn type_and_syntax_errors_name_the_key_path_and_line() {
    for (text, want) in [
        (
            "data_dir = \"d\"\n[ingest]\ninactivity_timeout = \"soon\"\n",
            &[
                "`ingest.inactivity_timeout` on line 3",
                "not a duration",
                "15m",
            ][..],
        ),
        (
            "data_dir = \"d\"\n[access.ids]\ntimeout = \"later\"\n",
            &["`access.ids.timeout` on line 3", "not a duration"],
        ),
        (
            "data_dir = \"d\"\n[storage]\nsegment_seconds = -1\n",
            &["`storage.segment_seconds` on line 3", "u32"],
        ),
        (
            "data_dir = \"d\"\n[management]\nhttps = [{ bind = \"1.2.3.4:5\", port = 1 }]\n",
            &[
                "`management.https[0].port` on line 3",
                "unknown field `port`",
            ],
        ),
        (
            "data_dir = \"d\"\n[[management.https]]\nlabel = \"LAN\"\n",
            &["`management.https[0]` on line 2", "missing field `bind`"],
        ),
        (
            "data_dir = \"d\"\n[events]\nsyslog_tls = { bind = \"nope\" }\n",
            &["`events.syslog_tls.bind` on line 3"],
        ),
        // Nothing to name but the position: toml's own text with line and column.
        ("data_dir = \"d\"\n[storage\n", &["line 2, column 9"]),
    ] {
        let err = Config::parse(text, Path::new("vigil.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert_says(&err.to_string(), want);
    }
}

#[test]
fn validating_a_config_built_in_memory_names_the_key_without_a_line() {
    let mut c = Config::with_data_dir("/var/lib/vigil");
    c.storage.segment_seconds = 1;
    let err = c.validate().unwrap_err();
    assert!(
        err.starts_with("`storage.segment_seconds` = 1 is too small"),
        "{err}"
    );
    let mut c = Config::with_data_dir("/var/lib/vigil");
    c.metrics.bind = "127.0.0.1:8443".parse().unwrap();
    let err = c.validate().unwrap_err();
    assert_says(
        &err,
        &[
            "`metrics.bind` = \"127.0.0.1:8443\" is also used by another listener, `management.https[0].bind` = \"0.0.0.0:8443\" (a wildcard address takes 8443/tcp on every interface):",
        ],
    );
    let mut c = Config::with_data_dir("/var/lib/vigil");
    c.metrics.bind = "0.0.0.0:9464".parse().unwrap();
    let err = c.validate().unwrap_err();
    assert_says(
        &err,
        &["`metrics.bind` = \"0.0.0.0:9464\" is not a loopback address:"],
    );
}

#[test]
fn deeply_dotted_unknown_keys_are_refused() {
    // Deeper than toml allows: its own message.
    let text = format!("data_dir = \"d\"\n{}b = 1\n", "a.".repeat(2000));
    assert_says(&refuse(&text), &["recursion limit"]);
    // Within toml's limit: the key serde stopped at, found despite the depth below it.
    let text = format!("data_dir = \"d\"\n[storage]\n{}b = 1\n", "a.".repeat(40));
    assert_says(
        &refuse(&text),
        &["`storage.a` on line 3", "unknown field `a`"],
    );
}
