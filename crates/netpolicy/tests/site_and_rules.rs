//! Site-file errors (each names its line), PowerShell golden files and structure, and the
//! textual properties of the nftables/iptables output.

use std::path::Path;

use vigil_netpolicy::firewall::{self, FirewallFormat};
use vigil_netpolicy::{Catalog, Site};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn catalog() -> Catalog {
    Catalog::with_vigil(&vigil_config::Config::with_data_dir("/d")).unwrap()
}

const BASE: &str = r#"name = "t"
[[zones]]
name = "cams"
kind = "cameras"
subnets = ["10.1.0.0/24"]
[[zones]]
name = "rec"
kind = "recording"
subnets = ["10.2.0.0/24"]
"#;

fn err(extra: &str) -> vigil_netpolicy::SiteError {
    Site::parse(
        &format!("{BASE}{extra}"),
        Path::new("site.toml"),
        &catalog(),
    )
    .unwrap_err()
}

#[test]
fn bad_sites_name_the_line() {
    let base_lines = BASE.lines().count();
    let cases: &[(&str, usize, &str)] = &[
        // Overlapping subnets of two zones.
        (
            "[[zones]]\nname = \"x\"\nkind = \"clients\"\nsubnets = [\"10.1.0.128/25\"]\n",
            4,
            "overlaps 10.1.0.0/24 of zone `cams`",
        ),
        // Invalid subnet.
        (
            "[[zones]]\nname = \"x\"\nkind = \"clients\"\nsubnets = [\"10.3.0.300/24\"]\n",
            4,
            "is not a subnet",
        ),
        // Host bits set.
        (
            "[[zones]]\nname = \"x\"\nkind = \"clients\"\nsubnets = [\"10.3.0.1/24\"]\n",
            4,
            "host bits set",
        ),
        // Unknown zone kind.
        (
            "[[zones]]\nname = \"x\"\nkind = \"lobby\"\nsubnets = [\"10.3.0.0/24\"]\n",
            3,
            "unknown zone kind",
        ),
        // Unknown role and unknown system.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"vigil:recorder\"]\n",
            4,
            "unknown role `vigil:recorder`",
        ),
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"genetec:archiver\"]\n",
            4,
            "unknown system `genetec`",
        ),
        // Port out of range.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"vigil:recording\"]\n[[hosts.ports]]\nrole = \"vigil:recording\"\ndefault = 9443\nport = 70000\n",
            8,
            "port 70000 is out of range",
        ),
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"xprotect:recording-server\"]\nenable = [\"0/tcp\"]\n",
            5,
            "out of range",
        ),
        // A host in no zone.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.9.0.5\"\nroles = [\"vigil:recording\"]\n",
            3,
            "is in no zone",
        ),
        // Not an address.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"rec-one\"\nroles = [\"vigil:recording\"]\n",
            3,
            "not an IP address",
        ),
        // Enabling a port that is not optional.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"xprotect:recording-server\"]\nenable = [\"7563/tcp\"]\n",
            5,
            "not a disabled-by-default port",
        ),
        // Unknown key.
        (
            "[[hosts]]\nname = \"r\"\nadress = \"10.2.0.5\"\n",
            3,
            "unknown field `adress`",
        ),
        // Duplicate host.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"vigil:recording\"]\n[[hosts]]\nname = \"r\"\naddress = \"10.2.0.6\"\nroles = [\"vigil:recording\"]\n",
            6,
            "defined twice",
        ),
        // Too many instances.
        (
            "[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"xprotect:recording-server\"]\ninstances = 0\n",
            5,
            "instances = 0",
        ),
    ];
    for (extra, line, want) in cases {
        let e = err(extra);
        assert_eq!(e.line, base_lines + line, "{want}: {e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("site.toml:{}:", base_lines + line)),
            "{e}"
        );
    }
    // Not TOML at all.
    let e = Site::parse("zones = [", Path::new("s.toml"), &catalog()).unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    // No zones.
    let e = Site::parse("name = \"x\"\n", Path::new("s.toml"), &catalog()).unwrap_err();
    assert!(e.message.contains("no zones"), "{e}");
}

#[test]
fn internet_zone_may_be_everything_else() {
    let site = Site::parse(
        &format!("{BASE}[[zones]]\nname = \"net\"\nkind = \"internet\"\nsubnets = [\"0.0.0.0/0\"]\n[[hosts]]\nname = \"r\"\naddress = \"10.2.0.5\"\nroles = [\"vigil:recording\"]\n"),
        Path::new("s.toml"),
        &catalog(),
    )
    .unwrap();
    assert_eq!(site.zones[site.hosts[0].zone].name, "rec");
}

fn load(site: &str, config: Option<&str>) -> (Site, Catalog) {
    let config = match config {
        Some(c) => vigil_config::Config::load(&fixtures().join(c)).unwrap(),
        None => vigil_config::Config::with_data_dir("/d"),
    };
    let catalog = Catalog::with_vigil(&config).unwrap();
    (
        Site::load(&fixtures().join(site), &catalog).unwrap(),
        catalog,
    )
}

#[test]
fn powershell_matches_golden_files() {
    for (site, config, stem) in [
        ("xprotect-site.toml", None, "xprotect"),
        ("vigil-site.toml", Some("vigil-config.toml"), "vigil"),
    ] {
        let (site, catalog) = load(site, config);
        let files = firewall::generate(&site, &catalog, FirewallFormat::Powershell);
        let text = firewall::concat(&files);
        let golden = fixtures().join(format!("golden/{stem}.ps1"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
                golden.display()
            )
        });
        assert_eq!(
            text,
            want,
            "{stem}: output differs from {}; if intended, UPDATE_GOLDEN=1",
            golden.display()
        );
    }
}

/// Reads `-Flag value` pairs of a New-NetFirewallRule line (values may be quoted lists).
fn flags(line: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut rest = line.trim_start_matches("New-NetFirewallRule").trim();
    while let Some(r) = rest.strip_prefix('-') {
        let (name, after) = r.split_once(' ').unwrap_or((r, ""));
        let after = after.trim_start();
        let (value, next) = if after.starts_with('\'') {
            // A quoted value, possibly a comma-joined list of quoted values.
            let mut end = 0;
            let bytes = after.as_bytes();
            let mut in_quote = false;
            while end < bytes.len() {
                match bytes[end] {
                    b'\'' => in_quote = !in_quote,
                    b' ' if !in_quote => break,
                    _ => {}
                }
                end += 1;
            }
            (&after[..end], &after[end..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        out.insert(name.to_string(), value.to_string());
        rest = next.trim_start();
        if rest.starts_with('|') {
            break;
        }
    }
    out
}

#[test]
fn powershell_rules_are_complete() {
    let (site, catalog) = load("xprotect-site.toml", None);
    let files = firewall::generate(&site, &catalog, FirewallFormat::Powershell);
    assert_eq!(files.len(), site.hosts.len());
    let mut names = std::collections::HashSet::new();
    let mut count = 0;
    for f in &files {
        for line in f
            .text
            .lines()
            .filter(|l| l.starts_with("New-NetFirewallRule"))
        {
            count += 1;
            let fl = flags(line);
            for k in [
                "Name",
                "Direction",
                "Protocol",
                "LocalPort",
                "RemoteAddress",
                "Action",
                "Group",
            ] {
                assert!(
                    fl.get(k).is_some_and(|v| !v.is_empty()),
                    "{k} missing in {line}"
                );
            }
            assert!(
                names.insert(fl["Name"].clone()),
                "duplicate rule name {}",
                fl["Name"]
            );
            assert_eq!(fl["Direction"], "Inbound");
            assert!(["TCP", "UDP"].contains(&fl["Protocol"].as_str()), "{line}");
            let port = &fl["LocalPort"];
            assert!(
                port.split('-')
                    .all(|p| p.parse::<u16>().is_ok_and(|p| p > 0)),
                "{line}"
            );
            let remote = &fl["RemoteAddress"];
            if fl["Action"] == "Allow" {
                for a in remote.split(',') {
                    let a = a.trim_matches('\'');
                    assert!(
                        a.parse::<ipnet::IpNet>().is_ok(),
                        "allow rule with remote {a}: {line}"
                    );
                }
            } else {
                assert_eq!(
                    (fl["Action"].as_str(), remote.as_str()),
                    ("Block", "Any"),
                    "{line}"
                );
            }
        }
        assert!(
            f.text
                .contains("-DefaultInboundAction Block -LogBlocked True")
        );
    }
    assert!(count > 15, "{count} rules");
    let mgmt = files.iter().find(|f| f.target == "mgmt1").unwrap();
    // 9000 only from recording servers.
    let line = mgmt
        .text
        .lines()
        .find(|l| l.contains("-LocalPort 9000 "))
        .unwrap();
    assert!(
        line.contains("-RemoteAddress '10.61.2.10/32','10.61.2.11/32' "),
        "{line}"
    );
    // Local-only 6473 is blocked from the network.
    assert!(
        mgmt.text
            .lines()
            .any(|l| l.contains("-Action Block") && l.contains("-LocalPort 6473 "))
    );
}

#[test]
fn nft_and_iptables_text_explain_every_rule() {
    let (site, catalog) = load("xprotect-site.toml", None);
    for format in [FirewallFormat::Nftables, FirewallFormat::Iptables] {
        let files = firewall::generate(&site, &catalog, format);
        let router = files.iter().find(|f| f.target == "router").unwrap();
        assert!(router.text.contains("zone cams (cameras): 10.61.1.0/24"));
        for f in &files {
            let lines: Vec<&str> = f.text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let accept = l.contains("accept comment")
                    || l.ends_with("-j ACCEPT") && l.contains("--dport");
                if accept {
                    // A `#` comment with the purpose sits right above each group of rules.
                    let above = lines[..i]
                        .iter()
                        .rev()
                        .take_while(|l| !l.trim().is_empty())
                        .any(|l| l.trim_start().starts_with('#'));
                    assert!(above, "{}: rule without explanation: {l}", f.file_name);
                }
            }
            assert!(
                f.text.contains("not allowed by site policy") || f.file_name.contains("router"),
                "{}",
                f.file_name
            );
        }
        // The deprecated SMTP port and video push range stay closed and say why.
        let rec = files.iter().find(|f| f.target == "rec1").unwrap();
        assert!(
            rec.text
                .contains("closed: xprotect:recording-server 25/tcp: disabled by default")
        );
        let mobile = files.iter().find(|f| f.target == "mobile1").unwrap();
        assert!(mobile.text.contains("40001-40099/tcp: disabled by default"));
    }
}

#[test]
fn format_names_parse() {
    assert_eq!(
        "nftables".parse::<FirewallFormat>().unwrap(),
        FirewallFormat::Nftables
    );
    assert!(
        "pf".parse::<FirewallFormat>()
            .unwrap_err()
            .to_string()
            .contains("nftables, iptables or powershell")
    );
}
