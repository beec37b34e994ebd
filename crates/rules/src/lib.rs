//! vigil-rules: which configured rules an event fires, and which actions they ask for.
//!
//! Pure: [`RuleSet::compile`] turns the `[[rules]]` of `vigil.toml` (checked by
//! `vigil_config::rules`) into matchers, [`RuleSet::fire`] answers for one event. Running the
//! actions (alarms, bookmarks, webhooks, SIEM) is the application layer's job
//! (`vigil_app::alarms`), so the rule-test endpoint can show what would happen without doing
//! it. Semantics and examples: docs/rules-and-alarms.md.

use regex::Regex;
use serde::Serialize;
use vigil_config::rules::{
    RuleConfig, check_rules, compile_regex, parse_days, parse_time_of_day, severity_code,
};
use vigil_events::{NewEvent, Severity, SourceKind};

/// Rules that do not compile (the message names the rule and the key, like the config
/// file's validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A UTC time window: on the days of `days` (bit 0 Monday), minutes `from..to` after
/// midnight; `to <= from` runs across midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    days: u8,
    from: u16,
    to: u16,
}

impl Window {
    fn contains(&self, weekday: u8, minute: u16) -> bool {
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.from < self.to {
            on(weekday) && (self.from..self.to).contains(&minute)
        } else {
            (on(weekday) && minute >= self.from) || (on((weekday + 6) % 7) && minute < self.to)
        }
    }
}

/// The weekday (0 Monday … 6 Sunday) and minute of the day of a Unix time in µs, in UTC.
pub fn utc_weekday_minute(time_us: i64) -> (u8, u16) {
    let secs = time_us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let minute = (secs.rem_euclid(86_400) / 60) as u16;
    // 1970-01-01 was a Thursday (3 with Monday as 0).
    let weekday = (days + 3).rem_euclid(7) as u8;
    (weekday, minute)
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    config: RuleConfig,
    source_kinds: Vec<SourceKind>,
    min_severity: Option<Severity>,
    text: Option<String>,
    regex: Option<Regex>,
    windows: Vec<Window>,
}

/// What a fired rule asks for, for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Raise (or count into the open) alarm of this rule for the event's camera and source.
    Alarm { priority: u8 },
    /// Bookmark `camera` from `from_us` to `to_us`.
    Bookmark {
        camera: String,
        from_us: i64,
        to_us: i64,
        label: String,
    },
    /// Lock `camera`'s recording from `from_us` to `to_us` against retention for `days`.
    Lock {
        camera: String,
        from_us: i64,
        to_us: i64,
        days: u32,
        reason: String,
    },
    /// POST the event to the rule's webhook.
    Webhook,
    /// E-mail the match to these addresses.
    Email { to: Vec<String> },
    /// Forward the match to the SIEM (an `alarm.rule_matched` event).
    Siem,
    /// An action the rule lists that cannot run for this event, and why.
    Skipped { what: &'static str, why: String },
}

impl Rule {
    fn compile(config: &RuleConfig) -> Result<Rule, String> {
        let regex = config.regex.as_deref().map(compile_regex).transpose()?;
        let mut windows = Vec::with_capacity(config.schedule.len());
        for w in &config.schedule {
            windows.push(Window {
                days: parse_days(&w.days)?,
                from: parse_time_of_day(&w.from, false)?,
                to: parse_time_of_day(&w.to, true)?,
            });
        }
        Ok(Rule {
            source_kinds: config
                .source_kinds
                .iter()
                .filter_map(|k| SourceKind::parse(k))
                .collect(),
            min_severity: config
                .min_severity
                .as_deref()
                .and_then(severity_code)
                .and_then(Severity::from_code),
            text: config.text.as_ref().map(|t| t.to_ascii_lowercase()),
            regex,
            windows,
            config: config.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Whether the rule's schedule includes `time_us` (UTC); a rule without one always does.
    pub fn active_at(&self, time_us: i64) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let (weekday, minute) = utc_weekday_minute(time_us);
        self.windows.iter().any(|w| w.contains(weekday, minute))
    }

    /// Whether `e` passes every filter of the rule (the schedule, at the event's time,
    /// included). Enabled or not.
    pub fn matches(&self, e: &NewEvent) -> bool {
        let c = &self.config;
        (c.kinds.is_empty()
            || c.kinds.iter().any(|k| {
                if k.ends_with('.') {
                    e.kind.starts_with(k.as_str())
                } else {
                    e.kind == *k
                }
            }))
            && (self.source_kinds.is_empty() || self.source_kinds.contains(&e.source.kind))
            && (c.sources.is_empty() || c.sources.contains(&e.source.name))
            && (c.cameras.is_empty() || e.camera.as_ref().is_some_and(|x| c.cameras.contains(x)))
            && self.min_severity.is_none_or(|s| e.severity <= s)
            && self
                .text
                .as_ref()
                .is_none_or(|t| contains_ascii_case_insensitive(&e.message, t))
            && self.regex.as_ref().is_none_or(|r| r.is_match(&e.message))
            && self.active_at(e.time_us)
    }

    /// The actions the rule runs for `e`, in the order it runs them.
    pub fn actions(&self, e: &NewEvent) -> Vec<Action> {
        let c = &self.config;
        let mut out = Vec::new();
        if let Some(a) = &c.alarm {
            out.push(Action::Alarm {
                priority: a.priority,
            });
        }
        if let Some(b) = &c.bookmark {
            match &e.camera {
                Some(camera) => out.push(Action::Bookmark {
                    camera: camera.clone(),
                    from_us: e
                        .time_us
                        .saturating_sub(i64::from(b.pre_seconds) * 1_000_000),
                    to_us: e
                        .time_us
                        .saturating_add(i64::from(b.post_seconds) * 1_000_000),
                    label: b.label.clone().unwrap_or_else(|| e.message.clone()),
                }),
                None => out.push(Action::Skipped {
                    what: "bookmark",
                    why: "the event concerns no camera".into(),
                }),
            }
        }
        if let Some(l) = &c.lock {
            match &e.camera {
                Some(camera) => out.push(Action::Lock {
                    camera: camera.clone(),
                    from_us: e
                        .time_us
                        .saturating_sub(i64::from(l.pre_seconds) * 1_000_000),
                    to_us: e
                        .time_us
                        .saturating_add(i64::from(l.post_seconds) * 1_000_000),
                    days: l.days,
                    reason: format!(
                        "rule {}: {}",
                        c.name,
                        l.reason.as_deref().unwrap_or(&e.message)
                    ),
                }),
                None => out.push(Action::Skipped {
                    what: "lock",
                    why: "the event concerns no camera".into(),
                }),
            }
        }
        if c.webhook.is_some() {
            out.push(Action::Webhook);
        }
        if let Some(m) = &c.email {
            out.push(Action::Email { to: m.to.clone() });
        }
        if c.siem {
            out.push(Action::Siem);
        }
        out
    }
}

/// Events the rule machinery itself publishes (alarms changing state, rule matches
/// forwarded, the rule queue's losses); rules never see them, so no rule can feed itself.
pub fn is_rule_output(e: &NewEvent) -> bool {
    e.source.kind == SourceKind::Vigil
        && (e.kind.starts_with("alarm.") || e.kind.starts_with("rules."))
}

/// The name of the built-in rule that raises an alarm when a camera's device is not the one
/// recorded for it (device allow-listing, docs/cameras-onvif.md).
pub const DEVICE_MISMATCH_RULE: &str = "vigil.camera-device-mismatch";

/// The name of the built-in rule that raises an alarm when a camera whose certificate was
/// verified or pinned presents another one (a man in the middle or a swapped device; the link
/// is stopped, docs/design/camera-tls.md).
pub const CERTIFICATE_CHANGED_RULE: &str = "vigil.camera-certificate-changed";

/// Rules every installation has without configuring them: events that must alarm by default.
/// A `[[rules]]` entry of the same name replaces one (to change its priority or actions, or
/// to switch it off with `enabled = false`). Each matches only Vigil's own events (source
/// kind `vigil`), so an event posted from outside cannot raise these alarms.
pub fn builtin_rules() -> Vec<RuleConfig> {
    let alarm_on = |name: &str, kind: &str| RuleConfig {
        name: name.into(),
        enabled: true,
        kinds: vec![kind.into()],
        source_kinds: vec!["vigil".into()],
        sources: vec![],
        cameras: vec![],
        min_severity: None,
        text: None,
        regex: None,
        schedule: vec![],
        alarm: Some(vigil_config::rules::AlarmAction { priority: 1 }),
        bookmark: None,
        lock: None,
        webhook: None,
        email: None,
        siem: false,
    };
    vec![
        alarm_on(DEVICE_MISMATCH_RULE, "camera.device_mismatch"),
        alarm_on(CERTIFICATE_CHANGED_RULE, "camera.certificate_changed"),
    ]
}

/// The rules in effect, compiled.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Checks and compiles `rules` (the same checks as the config file's), followed by the
    /// [`builtin_rules`] none of them replaces by name.
    pub fn compile(rules: &[RuleConfig]) -> Result<RuleSet, RuleError> {
        check_rules(rules, &|_| String::new()).map_err(RuleError)?;
        let builtin = builtin_rules()
            .into_iter()
            .filter(|b| !rules.iter().any(|r| r.name == b.name));
        let rules = rules
            .iter()
            .cloned()
            .chain(builtin)
            .map(|r| Rule::compile(&r).map_err(|e| RuleError(format!("rule {:?}: {e}", r.name))))
            .collect::<Result<_, _>>()?;
        Ok(RuleSet { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name() == name)
    }

    /// The enabled rules `e` fires, in file order, with their actions. Nothing for the rule
    /// machinery's own events.
    pub fn fire(&self, e: &NewEvent) -> Vec<(&Rule, Vec<Action>)> {
        if is_rule_output(e) {
            return Vec::new();
        }
        self.rules
            .iter()
            .filter(|r| r.config.enabled && r.matches(e))
            .map(|r| (r, r.actions(e)))
            .collect()
    }
}

/// Whether `haystack` contains `needle_lower` (already ASCII-lowercased), ignoring ASCII case:
/// what `to_ascii_lowercase().contains()` answers, without a lowercased copy of every message
/// a text rule looks at.
fn contains_ascii_case_insensitive(haystack: &str, needle_lower: &str) -> bool {
    let needle = needle_lower.as_bytes();
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_config::rules::{AlarmAction, BookmarkAction, LockAction, ScheduleWindow};
    use vigil_events::{Category, Source};

    #[test]
    fn text_search_ignores_ascii_case_like_a_lowercased_copy() {
        for (hay, needle) in [
            ("Duplicate ADDRESS 10.0.0.1", "duplicate address"),
            ("duplicate addres", "duplicate address"),
            ("", "x"),
            ("anything", ""),
            ("ÄRGER Duplicate address", "duplicate address"),
            ("straße STRASSE", "strasse"),
            ("straße", "straße"),
            ("STRAẞE", "straße"),
            ("ab", "abc"),
        ] {
            assert_eq!(
                contains_ascii_case_insensitive(hay, needle),
                hay.to_ascii_lowercase().contains(needle),
                "{hay:?} {needle:?}"
            );
        }
    }

    /// 2026-12-07 (a Monday) 00:00 UTC, in µs.
    const MONDAY: i64 = 1_796_601_600_000_000;
    const HOUR: i64 = 3_600_000_000;

    fn rule(name: &str) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            enabled: true,
            kinds: vec![],
            source_kinds: vec![],
            sources: vec![],
            cameras: vec![],
            min_severity: None,
            text: None,
            regex: None,
            schedule: vec![],
            alarm: Some(AlarmAction { priority: 2 }),
            bookmark: None,
            lock: None,
            webhook: None,
            email: None,
            siem: false,
        }
    }

    fn ev(kind: &str, severity: Severity, message: &str, camera: Option<&str>) -> NewEvent {
        NewEvent {
            time_us: MONDAY + 12 * HOUR,
            source: Source::new(SourceKind::Syslog, "sw-1"),
            kind: kind.into(),
            category: Category::External,
            severity,
            message: message.into(),
            camera: camera.map(str::to_owned),
            attributes: Default::default(),
        }
    }

    fn window(days: &[&str], from: &str, to: &str) -> ScheduleWindow {
        ScheduleWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn utc_weekdays_and_minutes() {
        assert_eq!(utc_weekday_minute(0), (3, 0), "1970-01-01 was a Thursday");
        assert_eq!(utc_weekday_minute(MONDAY), (0, 0));
        assert_eq!(
            utc_weekday_minute(MONDAY + 6 * 24 * HOUR + 23 * HOUR + 59 * 60_000_000),
            (6, 1439)
        );
        assert_eq!(
            utc_weekday_minute(MONDAY - 1),
            (6, 1439),
            "a µs before is Sunday"
        );
        assert_eq!(utc_weekday_minute(-1), (2, 1439), "before 1970 too");
    }

    #[test]
    fn filters_combine_with_and_lists_with_or() {
        let mut r = rule("dot1x");
        r.kinds = vec!["syslog.dot1x_failure".into(), "security.".into()];
        r.sources = vec!["sw-1".into(), "sw-2".into()];
        r.source_kinds = vec!["syslog".into()];
        r.cameras = vec!["lobby".into()];
        r.min_severity = Some("warning".into());
        r.text = Some("FAIL".into());
        r.regex = Some(r"Gi\d+/\d+/\d+".into());
        let set = RuleSet::compile(&[r]).unwrap();
        let hit = ev(
            "syslog.dot1x_failure",
            Severity::Error,
            "auth fail on Gi1/0/3",
            Some("lobby"),
        );
        assert_eq!(set.fire(&hit).len(), 1);
        let prefix = NewEvent {
            kind: "security.login_failed".into(),
            ..hit.clone()
        };
        assert_eq!(set.fire(&prefix).len(), 1, "a kind prefix ending in '.'");
        let misses = [
            NewEvent {
                kind: "syslog.dot1x_failures".into(),
                ..hit.clone()
            },
            NewEvent {
                kind: "security".into(),
                ..hit.clone()
            },
            NewEvent {
                severity: Severity::Notice,
                ..hit.clone()
            },
            NewEvent {
                camera: Some("gate".into()),
                ..hit.clone()
            },
            NewEvent {
                camera: None,
                ..hit.clone()
            },
            NewEvent {
                source: Source::new(SourceKind::Syslog, "sw-3"),
                ..hit.clone()
            },
            NewEvent {
                source: Source::new(SourceKind::External, "sw-1"),
                ..hit.clone()
            },
            NewEvent {
                message: "auth fail on port 3".into(),
                ..hit.clone()
            },
            NewEvent {
                message: "auth ok on Gi1/0/3".into(),
                ..hit.clone()
            },
        ];
        for m in &misses {
            assert!(set.fire(m).is_empty(), "{m:?}");
        }
        // Case-insensitive text; a rule without filters matches everything.
        let any = RuleSet::compile(&[rule("any")]).unwrap();
        assert_eq!(
            any.fire(&ev("generic", Severity::Debug, "x", None)).len(),
            1
        );
    }

    #[test]
    fn schedules_are_utc_and_may_cross_midnight() {
        let mut r = rule("nights");
        // Weeknights 18:00 to 07:00 the next morning, and all of Saturday.
        r.schedule = vec![
            window(&["mon-fri"], "18:00", "07:00"),
            window(&["sat"], "00:00", "24:00"),
        ];
        let set = RuleSet::compile(&[r]).unwrap();
        let at = |t: i64| {
            let e = NewEvent {
                time_us: t,
                ..ev("generic", Severity::Info, "x", None)
            };
            !set.fire(&e).is_empty()
        };
        assert!(!at(MONDAY + 12 * HOUR), "Monday noon");
        assert!(at(MONDAY + 18 * HOUR), "Monday 18:00 starts it");
        assert!(at(MONDAY + 23 * HOUR));
        assert!(
            at(MONDAY + 24 * HOUR + 6 * HOUR),
            "Tuesday 06:00 is still Monday's night"
        );
        assert!(!at(MONDAY + 24 * HOUR + 7 * HOUR), "Tuesday 07:00 ends it");
        assert!(
            !at(MONDAY + 3 * HOUR),
            "Monday 03:00 belongs to Sunday night, not listed"
        );
        let saturday = MONDAY + 5 * 24 * HOUR;
        assert!(at(saturday + 3 * HOUR), "Saturday 03:00: Friday's night");
        assert!(at(saturday + 12 * HOUR), "all of Saturday");
        assert!(at(saturday + 23 * HOUR + 59 * 60_000_000));
        assert!(!at(saturday + 24 * HOUR + 12 * HOUR), "Sunday noon");
        assert!(
            !at(saturday + 24 * HOUR + 3 * HOUR),
            "Sunday 03:00: Saturday's window ends at 24:00"
        );
    }

    #[test]
    fn actions_follow_the_rule_and_the_event() {
        let mut r = rule("all");
        r.bookmark = Some(BookmarkAction {
            pre_seconds: 10,
            post_seconds: 30,
            label: None,
        });
        r.lock = Some(LockAction {
            pre_seconds: 60,
            post_seconds: 300,
            days: 30,
            reason: None,
        });
        r.siem = true;
        let set = RuleSet::compile(&[r]).unwrap();
        let e = ev("generic", Severity::Info, "door forced", Some("lobby"));
        let fired = set.fire(&e);
        assert_eq!(
            fired[0].1,
            vec![
                Action::Alarm { priority: 2 },
                Action::Bookmark {
                    camera: "lobby".into(),
                    from_us: e.time_us - 10_000_000,
                    to_us: e.time_us + 30_000_000,
                    label: "door forced".into()
                },
                Action::Lock {
                    camera: "lobby".into(),
                    from_us: e.time_us - 60_000_000,
                    to_us: e.time_us + 300_000_000,
                    days: 30,
                    reason: "rule all: door forced".into(),
                },
                Action::Siem,
            ]
        );
        let no_cam = ev("generic", Severity::Info, "door forced", None);
        let fired = set.fire(&no_cam);
        assert!(matches!(
            fired[0].1[1],
            Action::Skipped {
                what: "bookmark",
                ..
            }
        ));
        assert!(matches!(
            fired[0].1[2],
            Action::Skipped { what: "lock", .. }
        ));
    }

    #[test]
    fn disabled_rules_and_the_rules_own_events_fire_nothing() {
        let mut off = rule("off");
        off.enabled = false;
        let set = RuleSet::compile(&[off, rule("on")]).unwrap();
        let e = ev("generic", Severity::Info, "x", None);
        assert_eq!(
            set.fire(&e)
                .iter()
                .map(|(r, _)| r.name())
                .collect::<Vec<_>>(),
            ["on"]
        );
        let own = NewEvent::vigil(
            "srv",
            "alarm.raised",
            Category::Alarm,
            Severity::Warning,
            "x",
        );
        assert!(set.fire(&own).is_empty());
        let forged = NewEvent {
            source: Source::new(SourceKind::External, "x"),
            ..own
        };
        assert_eq!(
            set.fire(&forged).len(),
            1,
            "only Vigil's own alarm events are skipped"
        );
    }

    #[test]
    fn bad_rules_do_not_compile() {
        let mut r = rule("re");
        r.regex = Some("(x{500}){500}".into());
        let e = RuleSet::compile(&[r]).unwrap_err();
        assert!(e.0.contains("rules[0].regex"), "{e}");
        let e = RuleSet::compile(&[rule("a"), rule("a")]).unwrap_err();
        assert!(e.0.contains("rules[1].name"), "{e}");
    }

    /// An event of `kind` Vigil itself published for camera `lobby`.
    fn vigil_event(kind: &str, severity: Severity) -> NewEvent {
        let mut e = ev(kind, severity, "lobby: something changed", Some("lobby"));
        e.source = Source::new(SourceKind::Vigil, "srv1");
        e
    }

    /// The rules `e` fires in `set`, by name, with their actions.
    fn fired(set: &RuleSet, e: &NewEvent) -> Vec<(String, Vec<Action>)> {
        set.fire(e)
            .into_iter()
            .map(|(r, a)| (r.name().to_owned(), a))
            .collect()
    }

    #[test]
    fn built_in_rules_alarm_on_vigil_events_only_and_a_rule_of_their_name_replaces_them() {
        let set = RuleSet::compile(&[]).unwrap();
        for (kind, severity, name) in [
            (
                "camera.device_mismatch",
                Severity::Critical,
                DEVICE_MISMATCH_RULE,
            ),
            (
                "camera.certificate_changed",
                Severity::Alert,
                CERTIFICATE_CHANGED_RULE,
            ),
        ] {
            let own = vigil_event(kind, severity);
            assert_eq!(
                fired(&set, &own),
                [(name.to_owned(), vec![Action::Alarm { priority: 1 }])]
            );
            // The same kind from outside raises nothing.
            let mut forged = own.clone();
            forged.source = Source::new(SourceKind::External, "acs-1");
            assert!(set.fire(&forged).is_empty(), "{kind}");
            // An admin's rule of that name replaces it (here: switched off).
            let mut off = rule(name);
            off.enabled = false;
            let replaced = RuleSet::compile(&[off]).unwrap();
            assert_eq!(replaced.rules().len(), builtin_rules().len());
            assert!(replaced.fire(&own).is_empty(), "{kind}");
        }
    }
}
