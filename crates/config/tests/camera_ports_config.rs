//! `[[events.camera_ports]]` in `vigil.toml`: parsed, kept through the written file, and a bad
//! entry refused with its key and line.

use std::path::Path;

use vigil_config::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("vigil.toml")).map_err(|e| e.to_string())
}

const GOOD: &str = r#"data_dir = "/var/lib/vigil"

[[events.camera_ports]]
camera = "lobby"
switch = "sw-lobby"
interface = "Gi1/0/3"

[[events.camera_ports]]
camera = "gate"
mac = "0011.2233.4455"
"#;

#[test]
fn camera_ports_parse_and_survive_the_written_file() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.events.camera_ports.len(), 2);
    assert_eq!(
        c.events.camera_ports[1].mac.as_deref(),
        Some("0011.2233.4455")
    );
    let written = c.to_commented_toml();
    assert_eq!(parse(&written).unwrap(), c, "{written}");
}

#[test]
fn bad_camera_ports_name_the_key_and_its_line() {
    let cases = [
        (
            GOOD.replace("\"0011.2233.4455\"", "\"0011.2233\""),
            "`events.camera_ports[1].mac` on line 10 cannot be mapped: '0011.2233' is not a MAC address",
        ),
        (
            GOOD.replace("\"Gi1/0/3\"", "\"port three!\""),
            "`events.camera_ports[0].interface` on line 6 cannot be mapped",
        ),
        (
            GOOD.replace(
                "mac = \"0011.2233.4455\"",
                "switch = \"SW-LOBBY\"\ninterface = \"GigabitEthernet1/0/3\"",
            ),
            "`events.camera_ports[1].switch` on line 10 cannot be mapped: GigabitEthernet1/0/3 of SW-LOBBY is already mapped to camera lobby",
        ),
        (
            GOOD.replace("interface = \"Gi1/0/3\"\n", ""),
            "`events.camera_ports[0].interface`",
        ),
    ];
    for (text, want) in cases {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
}
