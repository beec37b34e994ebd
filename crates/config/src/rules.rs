//! Event rules (`[[rules]]` in `vigil.toml`): what a rule matches and which actions it runs,
//! the checks every rule passes before it is saved or loaded, and the parsers of its small
//! languages (days of the week, times of day, bounded regular expressions) that the rule
//! engine (`crates/rules`) shares. Reference with examples: docs/rules-and-alarms.md.

use serde::{Deserialize, Serialize};

use crate::WebhookSettings;

/// Rules a configuration holds at most.
pub const MAX_RULES: usize = 256;
/// Longest rule name.
pub const MAX_RULE_NAME: usize = 64;
/// Values a list filter (kinds, sources, cameras) holds at most.
pub const MAX_LIST: usize = 64;
/// Longest `text` or `regex` pattern, in bytes.
pub const MAX_PATTERN: usize = 512;
/// Memory a compiled `regex` may take (the regex crate's size limit), in bytes: bounds what a
/// pattern such as `(a{100}){100}` can cost; matching is linear in the message either way.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest `pre_seconds` / `post_seconds` of a bookmark.
pub const MAX_BOOKMARK_SECONDS: u32 = 3600;
/// Time windows per rule at most.
pub const MAX_WINDOWS: usize = 16;
/// Longest `pre_seconds` / `post_seconds` of an evidence lock.
pub const MAX_LOCK_SECONDS: u32 = 86_400;
/// Longest a rule's evidence lock holds before it expires, in days.
pub const MAX_LOCK_DAYS: u32 = 3650;

/// The RFC 5424 severities, most severe first, as rules name them.
const SEVERITIES: [&str; 8] = crate::SYSLOG_SEVERITIES;

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One rule: every filter that is set must match (AND); a list filter matches when any of
/// its values does (OR). A rule without filters matches every event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; names the rule in alarms, bookmarks, events and the API. Lowercase letters,
    /// digits, `_`, `-`, `.`; at most 64.
    pub name: String,
    /// A disabled rule is kept but fires nothing.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Event kinds: `syslog.dot1x_failure` exactly, or every kind under a prefix ending in
    /// `.` (`syslog.`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Source kinds: `vigil`, `camera`, `recording_server`, `external`, `analytics`, `syslog`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_kinds: Vec<String>,
    /// Source names (a switch's host name, a sending system's name), exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Cameras the event concerns, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<String>,
    /// At least this severe: `emergency` … `debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    /// The message contains this text (case-insensitive for ASCII).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The message matches this regular expression (Rust `regex` syntax: no look-around or
    /// back-references, so matching time is linear in the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// When the rule is active, in UTC: any window matches. Empty: always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduleWindow>,
    /// Raise an alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<AlarmAction>,
    /// Bookmark the event's camera's recording around the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<BookmarkAction>,
    /// Lock the event's camera's recording around the event against retention (an
    /// evidence lock, signed in the camera's ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockAction>,
    /// POST the event as JSON to an HTTPS webhook (signed like the intrusion alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    /// E-mail the match through the `[smtp]` server (always over TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAction>,
    /// Forward the match to the SIEM collectors (as an `alarm.rule_matched` event of the
    /// alarm category, which forwarding always selects).
    #[serde(default, skip_serializing_if = "is_false")]
    pub siem: bool,
}

/// A time window in UTC: on these days, from `from` (inclusive) to `to` (exclusive). A
/// window whose `to` is not after `from` runs across midnight into the next day (the day
/// it starts on is the one listed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// `mon` … `sun`, ranges such as `mon-fri`, or `all`. Empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// `HH:MM` (00:00 … 23:59).
    pub from: String,
    /// `HH:MM` (00:00 … 24:00).
    pub to: String,
}

/// Raise an alarm; while it is open, more matches of the same rule for the same camera and
/// source count into it instead of raising another.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AlarmAction {
    /// 1 (most urgent) … 5. Default 3.
    #[serde(default = "default_priority")]
    pub priority: u8,
}

fn default_priority() -> u8 {
    3
}

/// E-mail the match to these addresses through the `[smtp]` server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailAction {
    /// 1 to 20 addresses (`soc@example.net`), all in one message.
    pub to: Vec<String>,
}

/// Most recipients of one rule's e-mail.
pub const MAX_EMAIL_RECIPIENTS: usize = 20;

/// Whether `a` has the shape of an e-mail address (`local@domain`, no spaces, brackets or
/// control characters); the mail server decides whether it exists.
pub fn is_email_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
}

/// Bookmark the recording of the event's camera from `pre_seconds` before the event to
/// `post_seconds` after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BookmarkAction {
    #[serde(default = "default_pre")]
    pub pre_seconds: u32,
    #[serde(default = "default_post")]
    pub post_seconds: u32,
    /// Default: the event's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn default_pre() -> u32 {
    10
}

fn default_post() -> u32 {
    30
}

/// Lock the recording of the event's camera from `pre_seconds` before the event to
/// `post_seconds` after it, for `days` days (then the lock expires and retention may delete
/// the range again); an administrator may release it earlier. While one of the rule's locks
/// on the camera already covers an event's range, the event adds no other.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockAction {
    #[serde(default = "default_lock_pre")]
    pub pre_seconds: u32,
    #[serde(default = "default_lock_post")]
    pub post_seconds: u32,
    /// How long the lock holds, 1 to 3650 days. Default 30.
    #[serde(default = "default_lock_days")]
    pub days: u32,
    /// Why, after the rule's name in the lock's reason. Default: the event's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn default_lock_pre() -> u32 {
    30
}

fn default_lock_post() -> u32 {
    120
}

fn default_lock_days() -> u32 {
    30
}

/// A day of the week, Monday first (ISO 8601).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The days a `days` list names, as a bit set (bit 0 Monday … bit 6 Sunday); empty: all.
pub fn parse_days(days: &[String]) -> Result<u8, String> {
    if days.is_empty() {
        return Ok(0x7f);
    }
    let day = |s: &str| DAYS.iter().position(|d| *d == s);
    let mut set = 0u8;
    for d in days {
        let d = d.trim().to_ascii_lowercase();
        if d == "all" {
            set |= 0x7f;
            continue;
        }
        let (a, b) = match d.split_once('-') {
            Some((a, b)) => (day(a), day(b)),
            None => (day(&d), day(&d)),
        };
        let (Some(a), Some(b)) = (a, b) else {
            return Err(format!(
                "day {:?} is not a day: use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or all",
                d.chars().take(32).collect::<String>()
            ));
        };
        // A range may wrap around the week (fri-mon).
        let mut i = a;
        loop {
            set |= 1 << i;
            if i == b {
                break;
            }
            i = (i + 1) % 7;
        }
    }
    Ok(set)
}

/// Minutes after midnight of `HH:MM`; `24:00` only when `end` (a window's `to`).
pub fn parse_time_of_day(s: &str, end: bool) -> Result<u16, String> {
    let bad = || {
        format!(
            "{:?} is not a time of day: write HH:MM from 00:00 to {}",
            s.chars().take(16).collect::<String>(),
            if end { "24:00" } else { "23:59" }
        )
    };
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Compiles a rule's `regex` within the size limits (pattern length and compiled size).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "is {} bytes long; at most {MAX_PATTERN}",
            pattern.len()
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(32)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "compiles to more than {REGEX_SIZE_LIMIT} bytes: simplify it (fewer or smaller repetitions)"
            ),
            other => format!(
                "is not a valid regular expression: {}",
                other.to_string().lines().last().unwrap_or_default()
            ),
        })
}

/// A severity name's RFC 5424 code.
pub fn severity_code(s: &str) -> Option<u8> {
    SEVERITIES.iter().position(|v| *v == s).map(|i| i as u8)
}

/// The source kinds rules can name.
pub const SOURCE_KINDS: [&str; 6] = [
    "vigil",
    "camera",
    "recording_server",
    "external",
    "analytics",
    "syslog",
];

/// Checks `rules`; `at` turns a key path (`rules[2].regex`) into where it was written.
pub fn check_rules(rules: &[RuleConfig], at: &dyn Fn(&str) -> String) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!(
            "{} rules{}: at most {MAX_RULES}",
            rules.len(),
            at("rules")
        ));
    }
    let mut names: Vec<(&str, usize)> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        check_rule(r, i, at)?;
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == r.name) {
            let k = format!("rules[{i}].name");
            let f = format!("rules[{first}].name");
            return Err(format!(
                "`{k}` = {:?}{} is also the name of `{f}`{}: give each rule its own name",
                r.name,
                at(&k),
                at(&f)
            ));
        }
        names.push((&r.name, i));
    }
    Ok(())
}

/// Checks one rule (the `i`-th of the file) on its own.
pub fn check_rule(r: &RuleConfig, i: usize, at: &dyn Fn(&str) -> String) -> Result<(), String> {
    let key = |k: &str| format!("rules[{i}].{k}");
    let err = |k: &str, what: String| {
        let k = key(k);
        Err(format!("`{k}`{} {what}", at(&k)))
    };
    if r.name.is_empty()
        || r.name.len() > MAX_RULE_NAME
        || !r.name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
    {
        return err(
            "name",
            format!(
                "= {:?} is not a rule name: use 1 to {MAX_RULE_NAME} lowercase letters, digits, '_', '-' or '.'",
                r.name.chars().take(80).collect::<String>()
            ),
        );
    }
    for (k, list) in [
        ("kinds", &r.kinds),
        ("source_kinds", &r.source_kinds),
        ("sources", &r.sources),
        ("cameras", &r.cameras),
    ] {
        if list.len() > MAX_LIST {
            return err(k, format!("has {} values; at most {MAX_LIST}", list.len()));
        }
        if let Some(v) = list.iter().find(|v| v.is_empty() || v.len() > 128) {
            return err(
                k,
                format!(
                    "has the value {:?}: values are 1 to 128 bytes",
                    v.chars().take(32).collect::<String>()
                ),
            );
        }
    }
    if let Some(k) = r.kinds.iter().find(|k| {
        !k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    }) {
        return err(
            "kinds",
            format!(
                "has {:?}, which is not an event kind: use lowercase letters, digits, '_' and '.', e.g. \"syslog.dot1x_failure\" or the prefix \"syslog.\"",
                k.chars().take(32).collect::<String>()
            ),
        );
    }
    if let Some(k) = r
        .source_kinds
        .iter()
        .find(|k| !SOURCE_KINDS.contains(&k.as_str()))
    {
        return err(
            "source_kinds",
            format!(
                "has {:?}: use {}",
                k.chars().take(32).collect::<String>(),
                SOURCE_KINDS.join(", ")
            ),
        );
    }
    if let Some(s) = &r.min_severity
        && severity_code(s).is_none()
    {
        return err(
            "min_severity",
            format!(
                "= {:?} is not a severity: use one of {}",
                s.chars().take(32).collect::<String>(),
                SEVERITIES.join(", ")
            ),
        );
    }
    if let Some(t) = &r.text
        && (t.is_empty() || t.len() > MAX_PATTERN)
    {
        return err("text", format!("must be 1 to {MAX_PATTERN} bytes"));
    }
    if let Some(p) = &r.regex
        && let Err(why) = compile_regex(p)
    {
        return err("regex", why);
    }
    if r.schedule.len() > MAX_WINDOWS {
        return err(
            "schedule",
            format!("has {} windows; at most {MAX_WINDOWS}", r.schedule.len()),
        );
    }
    for (w, win) in r.schedule.iter().enumerate() {
        if let Err(why) = parse_days(&win.days) {
            return err(&format!("schedule[{w}].days"), why);
        }
        let from = match parse_time_of_day(&win.from, false) {
            Ok(t) => t,
            Err(why) => return err(&format!("schedule[{w}].from"), why),
        };
        let to = match parse_time_of_day(&win.to, true) {
            Ok(t) => t,
            Err(why) => return err(&format!("schedule[{w}].to"), why),
        };
        if from == to {
            return err(
                &format!("schedule[{w}].to"),
                format!(
                    "= {:?} equals `from`: a window needs a length (use 00:00 to 24:00 for a whole day)",
                    win.to
                ),
            );
        }
    }
    if let Some(a) = &r.alarm
        && !(1..=5).contains(&a.priority)
    {
        return err(
            "alarm.priority",
            format!(
                "= {} is out of range: use 1 (most urgent) to 5 (default 3)",
                a.priority
            ),
        );
    }
    if let Some(b) = &r.bookmark {
        for (k, v) in [
            ("bookmark.pre_seconds", b.pre_seconds),
            ("bookmark.post_seconds", b.post_seconds),
        ] {
            if v > MAX_BOOKMARK_SECONDS {
                return err(
                    k,
                    format!("= {v} is too long: use at most {MAX_BOOKMARK_SECONDS}"),
                );
            }
        }
        if b.pre_seconds == 0 && b.post_seconds == 0 {
            return err(
                "bookmark.post_seconds",
                "and `pre_seconds` are both 0: a bookmark needs a length".into(),
            );
        }
        if let Some(l) = &b.label
            && (l.is_empty() || l.len() > 256 || l.chars().any(char::is_control))
        {
            return err(
                "bookmark.label",
                "must be 1 to 256 bytes of printable text".into(),
            );
        }
    }
    if let Some(l) = &r.lock {
        for (k, v) in [
            ("lock.pre_seconds", l.pre_seconds),
            ("lock.post_seconds", l.post_seconds),
        ] {
            if v > MAX_LOCK_SECONDS {
                return err(
                    k,
                    format!("= {v} is too long: use at most {MAX_LOCK_SECONDS} (a day)"),
                );
            }
        }
        if l.pre_seconds == 0 && l.post_seconds == 0 {
            return err(
                "lock.post_seconds",
                "and `pre_seconds` are both 0: a lock needs a length".into(),
            );
        }
        if !(1..=MAX_LOCK_DAYS).contains(&l.days) {
            return err(
                "lock.days",
                format!(
                    "= {} is out of range: a rule's lock holds 1 to {MAX_LOCK_DAYS} days (default 30)",
                    l.days
                ),
            );
        }
        if let Some(why) = &l.reason
            && (why.trim().is_empty() || why.len() > 256 || why.chars().any(char::is_control))
        {
            return err(
                "lock.reason",
                "must be 1 to 256 bytes of printable text".into(),
            );
        }
    }
    if let Some(w) = &r.webhook
        && w.url.trim().is_empty()
    {
        return err(
            "webhook.url",
            "is empty: set an https:// URL or remove the webhook".into(),
        );
    }
    if let Some(m) = &r.email {
        if m.to.is_empty() || m.to.len() > MAX_EMAIL_RECIPIENTS {
            return err(
                "email.to",
                format!(
                    "lists {} addresses: give 1 to {MAX_EMAIL_RECIPIENTS}",
                    m.to.len()
                ),
            );
        }
        if let Some(bad) = m.to.iter().find(|a| !is_email_address(a)) {
            return err(
                "email.to",
                format!(
                    "has {:?}, which is not an e-mail address: write them as \"soc@example.net\"",
                    bad.chars().take(80).collect::<String>()
                ),
            );
        }
    }
    if r.alarm.is_none()
        && r.bookmark.is_none()
        && r.lock.is_none()
        && r.webhook.is_none()
        && r.email.is_none()
        && !r.siem
    {
        return Err(format!(
            "rule {:?} (`rules[{i}]`{}) has no action: add `alarm`, `bookmark`, `lock`, `webhook`, `email` or `siem = true`",
            r.name,
            at(&format!("rules[{i}]"))
        ));
    }
    Ok(())
}

/// The `[[rules]]` tables of `rules`, as `vigil init` and the settings API write them.
pub fn rules_toml(rules: &[RuleConfig]) -> String {
    #[derive(Serialize)]
    struct Wrap<'a> {
        rules: &'a [RuleConfig],
    }
    if rules.is_empty() {
        return "# Event rules (docs/rules-and-alarms.md), e.g.:\n\
                # [[rules]]\n\
                # name = \"lobby-port-security\"\n\
                # kinds = [\"syslog.dot1x_failure\", \"syslog.port_security\"]\n\
                # cameras = [\"lobby\"]\n\
                # min_severity = \"warning\"\n\
                # schedule = [{ days = [\"mon-fri\"], from = \"18:00\", to = \"07:00\" }]\n\
                # alarm = { priority = 2 }\n\
                # bookmark = { pre_seconds = 10, post_seconds = 30 }\n\
                # lock = { pre_seconds = 30, post_seconds = 120, days = 30 }\n\
                # siem = true\n"
            .into();
    }
    toml::to_string(&Wrap { rules }).expect("rules serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_line(_: &str) -> String {
        String::new()
    }

    fn rule() -> RuleConfig {
        RuleConfig {
            name: "r1".into(),
            enabled: true,
            kinds: vec!["syslog.".into()],
            source_kinds: vec![],
            sources: vec![],
            cameras: vec![],
            min_severity: Some("warning".into()),
            text: None,
            regex: Some("Gi1/0/[0-9]+".into()),
            schedule: vec![],
            alarm: Some(AlarmAction { priority: 2 }),
            bookmark: None,
            lock: None,
            webhook: None,
            email: None,
            siem: false,
        }
    }

    #[test]
    fn days_parse_with_ranges_that_may_wrap() {
        assert_eq!(parse_days(&[]).unwrap(), 0x7f);
        assert_eq!(parse_days(&["mon-fri".into()]).unwrap(), 0b001_1111);
        assert_eq!(
            parse_days(&["sat".into(), "sun".into()]).unwrap(),
            0b110_0000
        );
        assert_eq!(parse_days(&["fri-mon".into()]).unwrap(), 0b111_0001);
        assert_eq!(parse_days(&["all".into()]).unwrap(), 0x7f);
        assert!(parse_days(&["monday".into()]).is_err());
        assert!(parse_days(&["mon-".into()]).is_err());
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_time_of_day("00:00", false).unwrap(), 0);
        assert_eq!(parse_time_of_day("18:30", false).unwrap(), 18 * 60 + 30);
        assert_eq!(parse_time_of_day("24:00", true).unwrap(), 1440);
        for bad in [
            "24:00", "7:00", "12:60", "25:00", "ab:cd", "", "12", "12:00:00",
        ] {
            assert!(parse_time_of_day(bad, false).is_err(), "{bad}");
        }
        assert!(parse_time_of_day("24:01", true).is_err());
    }

    #[test]
    fn regexes_are_bounded() {
        compile_regex("^%DOT1X-5-FAIL: .* (Gi[0-9/]+)").unwrap();
        let e = compile_regex("(x{900}){900}").unwrap_err();
        assert!(e.contains("compiles to more than"), "{e}");
        let e = compile_regex(&"a".repeat(MAX_PATTERN + 1)).unwrap_err();
        assert!(e.contains("at most 512"), "{e}");
        let e = compile_regex("(unclosed").unwrap_err();
        assert!(e.contains("not a valid regular expression"), "{e}");
        let e = compile_regex(&format!("{}x{}", "(".repeat(100), ")".repeat(100))).unwrap_err();
        assert!(e.contains("not a valid"), "{e}");
    }

    #[test]
    fn rules_are_checked_and_messages_say_which_key() {
        check_rules(&[rule()], &no_line).unwrap();
        let mut r = rule();
        r.name = "Bad Name".into();
        let e = check_rules(&[r], &no_line).unwrap_err();
        assert!(e.starts_with("`rules[0].name`"), "{e}");
        let mut r = rule();
        r.min_severity = Some("loud".into());
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("min_severity")
        );
        let mut r = rule();
        r.alarm = None;
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("has no action")
        );
        let mut r = rule();
        r.schedule = vec![ScheduleWindow {
            days: vec!["mon".into()],
            from: "08:00".into(),
            to: "08:00".into(),
        }];
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("rules[0].schedule[0].to")
        );
        let mut r = rule();
        r.alarm = Some(AlarmAction { priority: 9 });
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("priority")
        );
        let mut r = rule();
        r.bookmark = Some(BookmarkAction {
            pre_seconds: 0,
            post_seconds: 0,
            label: None,
        });
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("bookmark")
        );
        for (lock, key) in [
            ((0, 0, 30, None), "lock.post_seconds"),
            ((90_000, 10, 30, None), "lock.pre_seconds"),
            ((10, 10, 0, None), "lock.days"),
            ((10, 10, 4000, None), "lock.days"),
            ((10, 10, 30, Some("two\nlines")), "lock.reason"),
        ] {
            let mut r = rule();
            r.lock = Some(LockAction {
                pre_seconds: lock.0,
                post_seconds: lock.1,
                days: lock.2,
                reason: lock.3.map(str::to_owned),
            });
            let e = check_rules(&[r], &no_line).unwrap_err();
            assert!(e.starts_with(&format!("`rules[0].{key}`")), "{e}");
        }
        let mut r = rule();
        r.alarm = None;
        r.lock = Some(LockAction {
            pre_seconds: 5,
            post_seconds: 5,
            days: 1,
            reason: Some("door forced".into()),
        });
        check_rules(&[r], &no_line).unwrap();
        let mut r = rule();
        r.kinds = vec!["Not A Kind".into()];
        assert!(check_rules(&[r], &no_line).unwrap_err().contains("kinds"));
        let mut r = rule();
        r.source_kinds = vec!["switch".into()];
        assert!(
            check_rules(&[r], &no_line)
                .unwrap_err()
                .contains("source_kinds")
        );
        let e = check_rules(&[rule(), rule()], &no_line).unwrap_err();
        assert!(
            e.contains("rules[1].name") && e.contains("rules[0].name"),
            "{e}"
        );
    }
}
