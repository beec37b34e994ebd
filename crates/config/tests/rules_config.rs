//! `[[rules]]` in `vigil.toml`: parsed, checked with the line of the key at fault, and kept
//! through the file the settings API writes.

use std::path::Path;

use vigil_config::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("vigil.toml")).map_err(|e| e.to_string())
}

const GOOD: &str = r#"data_dir = "/var/lib/vigil"

[[rules]]
name = "lobby-port-security"
kinds = ["syslog.dot1x_failure", "syslog."]
sources = ["sw-1"]
cameras = ["lobby"]
min_severity = "warning"
regex = 'Gi\d+/\d+/\d+'
schedule = [{ days = ["mon-fri"], from = "18:00", to = "07:00" }, { days = ["sat", "sun"], from = "00:00", to = "24:00" }]
alarm = { priority = 2 }
bookmark = { pre_seconds = 10, post_seconds = 30, label = "port security" }
siem = true
lock = { pre_seconds = 20, post_seconds = 60, days = 7, reason = "port security" }

[[rules]]
name = "door"
enabled = false
text = "door forced"

[rules.webhook]
url = "https://hooks.example.net/vigil"
"#;

#[test]
fn rules_parse_and_survive_the_written_file() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[0];
    assert_eq!(r.alarm.as_ref().unwrap().priority, 2);
    assert_eq!(r.bookmark.as_ref().unwrap().pre_seconds, 10);
    assert_eq!(r.schedule[1].to, "24:00");
    assert!(r.enabled && r.siem);
    let l = r.lock.as_ref().unwrap();
    assert_eq!((l.pre_seconds, l.post_seconds, l.days), (20, 60, 7));
    assert!(!c.rules[1].enabled);
    assert_eq!(
        c.rules[1].webhook.as_ref().unwrap().url,
        "https://hooks.example.net/vigil"
    );
    let written = c.to_commented_toml();
    assert_eq!(parse(&written).unwrap(), c, "{written}");
    // No rules: the file carries a commented example, and reads back without rules.
    let plain = Config::with_data_dir("/d").to_commented_toml();
    assert!(plain.contains("# [[rules]]"));
    assert!(parse(&plain).unwrap().rules.is_empty());
}

#[test]
fn rule_errors_name_the_key_and_its_line() {
    let cases = [
        (
            GOOD.replace(r"'Gi\d+/\d+/\d+'", "'(x{900}){900}'"),
            "`rules[0].regex` on line 9 compiles to more than",
        ),
        (
            GOOD.replace("\"18:00\"", "\"18:61\""),
            "`rules[0].schedule[0].from` on line 10 \"18:61\" is not a time of day",
        ),
        (
            GOOD.replace("\"mon-fri\"", "\"weekdays\""),
            "`rules[0].schedule[0].days` on line 10 day \"weekdays\" is not a day",
        ),
        (
            GOOD.replace("priority = 2", "priority = 0"),
            "`rules[0].alarm.priority` on line 11 = 0 is out of range",
        ),
        (
            GOOD.replace("name = \"door\"", "name = \"lobby-port-security\""),
            "`rules[1].name` = \"lobby-port-security\" on line 17 is also the name of `rules[0].name` on line 4",
        ),
        (
            GOOD.replace("days = 7", "days = 0"),
            "`rules[0].lock.days` on line 14 = 0 is out of range",
        ),
        (
            GOOD.replace("post_seconds = 60", "post_seconds = 100000"),
            "`rules[0].lock.post_seconds` on line 14 = 100000 is too long",
        ),
        (
            GOOD.replace("min_severity = \"warning\"", "min_severity = \"loud\""),
            "`rules[0].min_severity` on line 8",
        ),
        (
            GOOD.replace(
                "[rules.webhook]\nurl = \"https://hooks.example.net/vigil\"\n",
                "",
            ),
            "rule \"door\" (`rules[1]` on line 16) has no action",
        ),
    ];
    for (text, want) in cases {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
    // Unknown keys are refused by name.
    let e = parse(&GOOD.replace("siem = true", "siem = true\nsms = true")).unwrap_err();
    assert!(e.contains("sms"), "{e}");
}
