//! The port manifest tells the truth: on a fresh `vigil init`, the listeners `vigil ports`
//! lists are exactly the sockets the `vigil serve` process holds (read from /proc), `vigil
//! audit` finds nothing wrong with them (the installation CA is trusted without `--ca`), and a
//! role turned on in the configuration appears in `ports` and `firewall` and is opened by
//! `serve`. Everything listens on loopback.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vigil_netaudit::listeners::parse_proc_net;
use vigil_netpolicy::model::Protocol;

/// (protocol, address) of every listening socket process `pid` holds: the socket tables of
/// its network namespace, kept to the inodes among its descriptors.
fn held_listeners(pid: u32) -> BTreeSet<(String, String)> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(link) = std::fs::read_link(fd.unwrap().path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            inodes.insert(inode.parse::<u64>().unwrap());
        }
    }
    let mut out = BTreeSet::new();
    for (file, proto, v6) in [
        ("tcp", Protocol::Tcp, false),
        ("tcp6", Protocol::Tcp, true),
        ("udp", Protocol::Udp, false),
        ("udp6", Protocol::Udp, true),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for s in parse_proc_net(&text, proto, v6).unwrap() {
            if inodes.contains(&s.inode) {
                out.insert((proto.to_string(), s.addr.to_string()));
            }
        }
    }
    out
}

/// (protocol, bind) of every inbound row of `vigil ports --format json`.
fn manifest_listeners(v: &common::Vigil) -> BTreeSet<(String, String)> {
    let rows: serde_json::Value =
        serde_json::from_str(&v.ok(&["ports", "--format", "json"])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["direction"] == "inbound")
        .map(|r| {
            let bind = r["bind"].as_str().unwrap().to_owned();
            assert!(!bind.is_empty(), "a listener without its address: {r}");
            (r["protocol"].as_str().unwrap().to_owned(), bind)
        })
        .collect()
}

/// The inbound row of `vigil ports --format json` for a role.
fn row_of(v: &common::Vigil, role: &str) -> serde_json::Value {
    let rows: serde_json::Value =
        serde_json::from_str(&v.ok(&["ports", "--format", "json"])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == role && r["direction"] == "inbound")
        .unwrap_or_else(|| panic!("no {role} listener in {rows}"))
        .clone()
}

/// Waits until the server holds `want` listening sockets (it binds them one after the other).
fn wait_listening(server: &common::Server, want: usize) -> BTreeSet<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = held_listeners(server.pid());
        if held.len() >= want && server.output().contains("Recovery:") {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "serve holds {held:?}, expected {want} listeners: {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The findings of `vigil audit --json` about this server: its sockets and its endpoints.
/// Other processes on the test machine (other test servers among them) are not this test's.
fn own_findings(v: &common::Vigil, ours: &BTreeSet<(String, String)>) -> (Vec<String>, String) {
    let out = v.cmd(&["audit", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let ports: Vec<String> = ours
        .iter()
        .map(|(_, a)| format!(":{}", a.rsplit(':').next().unwrap()))
        .collect();
    let findings = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let target = f["target"].as_str().unwrap();
            ports
                .iter()
                .any(|p| target.ends_with(p) || target.contains(&format!("{p})")))
        })
        .map(|f| f.to_string())
        .collect();
    (findings, text)
}

#[test]
fn a_fresh_install_lists_exactly_what_serve_opens_and_the_audit_finds_nothing() {
    let v = common::Vigil::init(10);
    let manifest = manifest_listeners(&v);
    // A fresh install: the HTTPS API and the loopback metrics page, nothing else (the events
    // role is off until it has senders; the all-in-one role opens no inter-server API).
    assert_eq!(manifest.len(), 2, "{manifest:?}");
    let table = v.ok(&["ports"]);
    assert!(
        table.contains("Off (nothing listens for these; how to turn each on):")
            && table.contains("vigil:events: ")
            && table.contains("set [events] enabled = true")
            && table.contains("(management.inter_server)")
            && table.contains("[[siem.collectors]]")
            && table.contains("vigil:archiver: ")
            && table.contains("set [archive] endpoint")
            && table.contains("vigil:mail: ")
            && table.contains("vigil:webhooks: "),
        "{table}"
    );
    // The metrics page is shown as loopback only.
    let metrics = row_of(&v, "vigil:metrics");
    assert_eq!(metrics["local_only"], true, "{metrics}");
    assert!(metrics["bind"].as_str().unwrap().starts_with("127.0.0.1:"));
    let https = row_of(&v, "vigil:management")["bind"]
        .as_str()
        .unwrap()
        .to_owned();

    let server = v.serve();
    let held = wait_listening(&server, manifest.len());
    assert_eq!(
        held,
        manifest,
        "vigil ports and the sockets serve holds differ: {}",
        server.output()
    );
    let (findings, report) = own_findings(&v, &held);
    assert!(findings.is_empty(), "{findings:#?}");
    // The audit did probe the HTTPS API and trusted its certificate by the installation CA,
    // without --ca.
    assert!(report.contains(&https), "{https} not probed: {report}");
    server.stop();
}

#[test]
fn a_role_turned_on_is_listed_opened_and_firewalled() {
    let v = common::Vigil::init(10);
    let site = v.dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[[zones]]\nname = \"servers\"\nkind = \"management\"\nsubnets = [\"10.3.0.0/24\"]\n\
         [[zones]]\nname = \"sensors\"\nkind = \"clients\"\nsubnets = [\"10.9.0.0/24\"]\n\
         [[hosts]]\nname = \"vms\"\naddress = \"10.3.0.10\"\n\
         roles = [\"vigil:management\", \"vigil:events\", \"vigil:metrics\"]\n",
    )
    .unwrap();
    let site_arg = site.to_str().unwrap();
    // Off: the firewall refuses to plan a role the configuration does not run, and says how
    // to turn it on.
    let out = v.cmd(&["firewall", "--site", site_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("vigil:events` is off in this configuration")
            && err.contains("[events] enabled = true"),
        "{err}"
    );
    let before = manifest_listeners(&v);

    v.set_config("enabled = false\ntcp = ", "enabled = true\ntcp = ");
    v.set_config(
        "allowed_sources = []",
        "allowed_sources = [\"127.0.0.1\", \"10.9.0.0/24\"]",
    );
    let after = manifest_listeners(&v);
    let added: Vec<&(String, String)> = after.difference(&before).collect();
    assert_eq!(
        added.len(),
        2,
        "the TLS event and syslog listeners: {after:?}"
    );
    assert!(!v.ok(&["ports"]).contains("vigil:events: "));
    // Bound to loopback (as this test binds everything), they are local only: the firewall
    // opens neither, nor the metrics page.
    let ports_of = |set: &BTreeSet<(String, String)>| -> Vec<String> {
        set.iter()
            .map(|(_, a)| a.rsplit(':').next().unwrap().to_owned())
            .collect()
    };
    let accepts = |rules: &str, port: &str| {
        rules
            .lines()
            .filter(|l| l.contains(&format!("--dport {port} ")) && l.contains("ACCEPT"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let rules = v.ok(&["firewall", "--site", site_arg, "--format", "iptables"]);
    for port in ports_of(&after) {
        assert!(accepts(&rules, &port).is_empty(), "{port}:\n{rules}");
    }
    // Bound to every address, the event listeners are opened to the allowed senders only
    // (the copy of the configuration is only read, never served).
    let text = std::fs::read_to_string(&v.config).unwrap();
    let mut wide = text.clone();
    for (_, addr) in &added {
        let port = addr.rsplit(':').next().unwrap();
        wide = wide.replace(&format!("\"{addr}\""), &format!("\"0.0.0.0:{port}\""));
    }
    assert_ne!(wide, text);
    let wide_config = v.dir.path().join("wide.toml");
    std::fs::write(&wide_config, wide).unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&wide_config)
        .args(["firewall", "--site", site_arg, "--format", "iptables"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rules = String::from_utf8_lossy(&out.stdout);
    for port in ports_of(&added.iter().map(|p| (*p).clone()).collect()) {
        let lines = accepts(&rules, &port);
        assert!(
            lines.iter().any(|l| l.contains("-s 10.9.0.0/24 "))
                && lines
                    .iter()
                    .all(|l| l.contains("-s 10.9.0.0/24 ") || l.contains("-s 127.0.0.1/32 ")),
            "{port} must be open to events.allowed_sources only: {lines:?}\n{rules}"
        );
    }
    for port in ports_of(&before) {
        assert!(accepts(&rules, &port).is_empty(), "{port}:\n{rules}");
    }

    let server = v.serve();
    let held = wait_listening(&server, after.len());
    assert_eq!(held, after, "{}", server.output());
    let (findings, _) = own_findings(&v, &held);
    assert!(findings.is_empty(), "{findings:#?}");
    server.stop();
}
