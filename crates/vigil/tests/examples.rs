//! The site files an integrator copies stay true: `vigil firewall` must accept the examples in
//! `examples/` (each with the `vigil.toml` beside it) and every site example in
//! `docs/network-hardening.md`, in all three output formats, and the rules must allow what the
//! examples' comments say they allow, and nothing the comments say stays closed.
//!
//! The binary's output is parsed back into allow rules (target, sources, destinations,
//! protocol, port) so the checks do not depend on comments or rule order.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FORMATS: [&str; 3] = ["nftables", "iptables", "powershell"];

fn repo() -> PathBuf {
    vigil_testkit::repo_root()
}

/// `vigil --config CONFIG firewall --site SITE --format FORMAT [extra...]`; asserts exit 0.
fn firewall(config: &Path, site: &Path, format: &str, extra: &[&str]) -> String {
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .arg("firewall")
        .arg("--site")
        .arg(site)
        .args(["--format", format])
        .args(extra)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil --config {} firewall --site {} --format {format} exited with {}:\n{}",
        config.display(),
        site.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("rules are UTF-8")
}

/// One allow rule as written in the output.
#[derive(Debug, Clone, PartialEq)]
struct Allow {
    /// `router` or a host name.
    target: String,
    srcs: Vec<String>,
    /// Empty for a host's input rules.
    dsts: Vec<String>,
    proto: String,
    port: String,
}

/// The printed output split at its `# ===== FILE (TARGET) =====` banners, by target (the
/// iptables `.v4` and `.v6` files of one target are joined).
fn files_by_target(output: &str) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(banner) = line
            .strip_prefix("# ===== ")
            .and_then(|l| l.strip_suffix(" ====="))
        {
            let target = banner
                .rsplit_once(" (")
                .and_then(|(_, t)| t.strip_suffix(')'))
                .unwrap_or_else(|| panic!("banner without a target: {line}"));
            current = Some(target.to_owned());
            files.entry(target.to_owned()).or_default();
            continue;
        }
        if let Some(t) = &current {
            let text = files.get_mut(t).expect("entry made at the banner");
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// The value after `key` in a whitespace-separated line: one token, or a `{ a, b }` set.
fn nft_value(line: &str, key: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once(key) else {
        return Vec::new();
    };
    let rest = rest.trim_start();
    if let Some(set) = rest.strip_prefix('{') {
        let (items, _) = set.split_once('}').expect("nft set is closed");
        items.split(',').map(|s| s.trim().to_owned()).collect()
    } else {
        vec![rest.split_whitespace().next().unwrap_or("").to_owned()]
    }
}

/// Every allow rule of every target of `output` in `format`.
fn allows(output: &str, format: &str) -> Vec<Allow> {
    let mut out = Vec::new();
    for (target, text) in files_by_target(output) {
        for line in text.lines().map(str::trim) {
            let rule = match format {
                "nftables" if line.contains(" counter accept") && line.contains(" dport ") => {
                    let before = line.split(" counter accept").next().unwrap();
                    let mut words = before.split_whitespace().rev();
                    let port = words.next().unwrap().to_owned();
                    assert_eq!(words.next(), Some("dport"), "{line}");
                    let proto = words.next().unwrap().to_owned();
                    Allow {
                        target: target.clone(),
                        srcs: nft_value(before, " saddr "),
                        dsts: nft_value(before, " daddr "),
                        proto,
                        port,
                    }
                }
                "iptables" if line.starts_with("-A ") && line.ends_with("-j ACCEPT") => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let after = |flag: &str| {
                        words
                            .iter()
                            .position(|w| *w == flag)
                            .map(|i| words[i + 1].to_owned())
                    };
                    let (Some(src), Some(port)) = (after("-s"), after("--dport")) else {
                        continue; // conntrack and ICMPv6 rules
                    };
                    Allow {
                        target: target.clone(),
                        srcs: vec![src],
                        dsts: after("-d").into_iter().collect(),
                        proto: after("-p").unwrap(),
                        port,
                    }
                }
                "powershell"
                    if line.starts_with("New-NetFirewallRule")
                        && line.contains("-Action Allow") =>
                {
                    let value = |flag: &str| {
                        line.split_once(flag)
                            .map(|(_, rest)| rest.trim_start())
                            .map(|rest| rest.split(" -").next().unwrap().to_owned())
                            .unwrap_or_else(|| panic!("no {flag} in {line}"))
                    };
                    Allow {
                        target: target.clone(),
                        srcs: value("-RemoteAddress ")
                            .split(',')
                            .map(|a| a.trim_matches('\'').to_owned())
                            .collect(),
                        dsts: Vec::new(),
                        proto: value("-Protocol ").to_ascii_lowercase(),
                        port: value("-LocalPort "),
                    }
                }
                _ => continue,
            };
            out.push(rule);
        }
    }
    out
}

/// A flow the example promises: `target` is a host (input rules) or `router` (forward rules,
/// with `dst`). PowerShell has no router file, so router flows are checked in the other two.
#[derive(Debug, Clone, Copy)]
struct Flow {
    target: &'static str,
    src: &'static str,
    dst: Option<&'static str>,
    proto: &'static str,
    port: &'static str,
}

const fn host(target: &'static str, src: &'static str, port: &'static str) -> Flow {
    Flow {
        target,
        src,
        dst: None,
        proto: "tcp",
        port,
    }
}

const fn router(src: &'static str, dst: &'static str, port: &'static str) -> Flow {
    Flow {
        target: "router",
        src,
        dst: Some(dst),
        proto: "tcp",
        port,
    }
}

fn allowed(rules: &[Allow], f: &Flow) -> bool {
    rules.iter().any(|r| {
        r.target == f.target
            && r.proto == f.proto
            && r.port == f.port
            && r.srcs.iter().any(|s| s == f.src)
            && f.dst.is_none_or(|d| r.dsts.iter().any(|x| x == d))
    })
}

/// Host names of a site file: the `name` of every `[[hosts]]` table.
fn host_names(site: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut table = "";
    for line in site.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
        } else if table == "[[hosts]]"
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            let value = value.split('#').next().unwrap().trim().trim_matches('"');
            names.push(value.to_owned());
        }
    }
    names
}

/// Runs the firewall in every format and checks what every site must get: exit 0, one rule
/// file per host (plus the router outside PowerShell), the promised flows, and none of the
/// refused ones.
fn check_site(config: &Path, site: &Path, must: &[Flow], must_not: &[Flow]) {
    let text = std::fs::read_to_string(site).unwrap();
    let hosts = host_names(&text);
    assert!(!hosts.is_empty(), "{} lists no host", site.display());
    for format in FORMATS {
        let output = firewall(config, site, format, &[]);
        let targets = files_by_target(&output);
        for h in &hosts {
            assert!(
                targets.contains_key(h),
                "{format}: no rule file for host {h} of {}",
                site.display()
            );
        }
        assert_eq!(
            targets.contains_key("router"),
            format != "powershell",
            "{format}: router file"
        );
        let rules = allows(&output, format);
        for f in must {
            if f.dst.is_some() && format == "powershell" {
                continue;
            }
            assert!(
                allowed(&rules, f),
                "{format}: {} does not allow {f:?}; allow rules: {rules:#?}",
                site.display()
            );
        }
        for f in must_not {
            if f.dst.is_some() && format == "powershell" {
                continue;
            }
            assert!(
                !allowed(&rules, f),
                "{format}: {} allows {f:?}",
                site.display()
            );
        }
    }
}

#[test]
fn small_site_example_gives_least_privilege_rules() {
    let dir = repo().join("examples/small-site");
    let (config, site) = (dir.join("vigil.toml"), dir.join("site.toml"));
    const OFFICE: &str = "192.168.10.0/24";
    const CAMERAS: &str = "192.168.20.0/24";
    const VMS1: &str = "192.168.30.10/32";
    check_site(
        &config,
        &site,
        &[
            // Office PCs reach the HTTPS API, on the server and through the router.
            host("vms1", OFFICE, "8443"),
            router(OFFICE, VMS1, "8443"),
            // The server pulls the cameras; every listed camera lets it in.
            router(VMS1, CAMERAS, "554"),
            router(VMS1, CAMERAS, "443"),
            host("cam-entrance", VMS1, "554"),
            host("cam-yard", VMS1, "443"),
        ],
        &[
            // Office PCs never reach a camera directly.
            router(OFFICE, CAMERAS, "554"),
            router(OFFICE, "192.168.20.11/32", "80"),
            host("cam-entrance", OFFICE, "554"),
            // One server: no other recording or management server may use the inter-server
            // APIs, and metrics stay on loopback.
            host("vms1", OFFICE, "8444"),
            host("vms1", OFFICE, "9443"),
            host("vms1", OFFICE, "9464"),
            // Cameras open nothing towards the server.
            host("vms1", CAMERAS, "8443"),
        ],
    );
    // No rule of any host or of the router lets in other ports of the server.
    for format in FORMATS {
        let rules = allows(&firewall(&config, &site, format, &[]), format);
        let ports: Vec<&str> = rules
            .iter()
            .filter(|r| r.target == "vms1")
            .map(|r| r.port.as_str())
            .collect();
        assert!(
            ports.iter().all(|p| *p == "8443"),
            "{format}: vms1 opens {ports:?}"
        );
    }
}

const INTERNET: &str = "0.0.0.0/0";
const CONTROL_ROOM: &str = "172.16.40.0/24";
const BUILDING_MGMT: &str = "172.16.50.0/24";
const HALL_A: &str = "172.16.20.0/24";
const HALL_B: &str = "172.16.21.0/24";
const MGMT1: &str = "172.16.31.10/32";
const REC1: &str = "172.16.30.11/32";
const REC2: &str = "172.16.30.12/32";
const FO1: &str = "172.16.30.20/32";
const MOBILE1: &str = "172.16.60.10/32";

fn xprotect_example() -> (PathBuf, PathBuf) {
    let dir = repo().join("examples/xprotect");
    (dir.join("vigil.toml"), dir.join("site.toml"))
}

/// What the XProtect example must never allow.
const XPROTECT_REFUSED: &[Flow] = &[
    // Plaintext 8081 never faces the Internet; nothing but the Mobile Server does.
    host("mobile1", INTERNET, "8081"),
    router(INTERNET, MGMT1, "443"),
    router(INTERNET, REC1, "7563"),
    // Clients never reach 9000, SQL Server, or the cameras.
    host("mgmt1", CONTROL_ROOM, "9000"),
    host("sql1", CONTROL_ROOM, "1433"),
    router(CONTROL_ROOM, HALL_A, "554"),
    host("cam-a-gate", CONTROL_ROOM, "80"),
    // rec1 runs one instance: no 9002.
    host("rec1", MGMT1, "9002"),
    // Video Push (disabled by default) stays closed.
    host("mobile1", REC1, "40001-40099"),
    host("mobile1", REC1, "40001:40099"),
];

#[test]
fn xprotect_example_is_accepted_and_confines_cameras() {
    let (config, site) = xprotect_example();
    check_site(
        &config,
        &site,
        &[
            // Recording and Failover Servers reach both camera halls; cameras let them in,
            // and the MOBOTIX cameras on HTTPS too.
            router(REC1, HALL_A, "554"),
            router(REC2, HALL_B, "554"),
            router(FO1, HALL_B, "443"),
            host("cam-a-gate", REC2, "554"),
            host("cam-b-dock7", REC1, "443"),
            host("cam-b-dock7", FO1, "443"),
        ],
        XPROTECT_REFUSED,
    );
    // Internet sources appear only on the Mobile Server's 8082.
    for format in FORMATS {
        let rules = allows(&firewall(&config, &site, format, &[]), format);
        for r in rules
            .iter()
            .filter(|r| r.srcs.iter().any(|s| s == INTERNET))
        {
            assert!(
                r.port == "8082"
                    && (r.target == "mobile1"
                        || (r.target == "router" && r.dsts == [MOBILE1.to_owned()])),
                "{format}: Internet reaches {r:?}"
            );
        }
    }
}

/// The example's internet zone is `0.0.0.0/0` and so covers every other zone: sources inside
/// the other zones must still be let in where the catalog allows them, and the Internet itself
/// only onto the DMZ's web port.
#[test]
fn xprotect_example_gives_least_privilege_rules() {
    let (config, site) = xprotect_example();
    check_site(
        &config,
        &site,
        &[
            // Only the Mobile Server's HTTPS port faces the Internet.
            host("mobile1", INTERNET, "8082"),
            router(INTERNET, MOBILE1, "8082"),
            host("mobile1", CONTROL_ROOM, "8081"),
            // Management Server 9000: Recording and Failover Servers only.
            host("mgmt1", REC1, "9000"),
            host("mgmt1", REC2, "9000"),
            host("mgmt1", FO1, "9000"),
            // Generic events (enabled on mgmt1) from the building management zone.
            host("mgmt1", BUILDING_MGMT, "1234"),
            // SQL Server only from the XProtect services that use it.
            host("sql1", MGMT1, "1433"),
            // rec2 runs two instances: 9001 and 9002; the Management Server reaches both.
            host("rec2", MGMT1, "9001"),
            host("rec2", MGMT1, "9002"),
            host("rec1", MGMT1, "9001"),
            // Smart Clients and the Mobile Server fetch video from the Recording Servers.
            host("rec1", CONTROL_ROOM, "7563"),
            host("rec1", MOBILE1, "7563"),
            router(CONTROL_ROOM, REC1, "7563"),
        ],
        XPROTECT_REFUSED,
    );
}

/// The ```toml blocks of a Markdown file that are site files (they have zones).
fn toml_site_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => {
                current = Some((i + 2, String::new()))
            }
            Some(_) if line.trim_start().starts_with("```") => {
                let (start, text) = current.take().unwrap();
                if text.contains("[[zones]]") {
                    blocks.push((start, text));
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_site_example_in_network_hardening_md_is_accepted() {
    let doc = repo().join("docs/network-hardening.md");
    let blocks = toml_site_blocks(&std::fs::read_to_string(&doc).unwrap());
    assert!(
        !blocks.is_empty(),
        "{} has no ```toml site example any more; keep one, or update this test",
        doc.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    // The defaults of a fresh `vigil init`: only data_dir is required.
    let config = tmp.path().join("vigil.toml");
    std::fs::write(&config, "data_dir = \"/var/lib/vigil\"\n").unwrap();
    for (line, text) in blocks {
        let site = tmp
            .path()
            .join(format!("network-hardening-line-{line}.toml"));
        std::fs::write(&site, &text).unwrap();
        // The file name carries the line number of the block in the document, so a refusal
        // ("file:line:column: message") points at the example to fix.
        check_site(&config, &site, &[], &[]);
    }
}

#[test]
fn out_dir_writes_one_file_per_target() {
    let dir = repo().join("examples/small-site");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rules");
    firewall(
        &dir.join("vigil.toml"),
        &dir.join("site.toml"),
        "nftables",
        &["--out-dir", out.to_str().unwrap()],
    );
    let site = std::fs::read_to_string(dir.join("site.toml")).unwrap();
    for name in host_names(&site)
        .iter()
        .map(String::as_str)
        .chain(["router"])
    {
        let text = std::fs::read_to_string(out.join(format!("{name}.nft")))
            .unwrap_or_else(|e| panic!("{name}.nft: {e}"));
        assert!(text.starts_with("#!/usr/sbin/nft -f"), "{name}.nft: {text}");
        assert!(text.contains("policy drop"), "{name}.nft: {text}");
    }
}
