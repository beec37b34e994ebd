//! Event rules over the API (docs/rules-and-alarms.md): admins read them, replace them all at
//! once (saved as the `[[rules]]` of `vigil.toml` through the settings use case, in effect at
//! once, audited as `config_changed`), and try an example event to see which rules it would
//! fire and which actions would run, without running them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Permission;
use vigil_app::alarms::Firing;
use vigil_config::RuleConfig;
use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};
use vigil_media::store::now_us;
use vigil_media::time::parse_time;

use super::blocking;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiPath;
use crate::json::Json;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, replace_rules))
        .routes(routes!(get_rule))
        .routes(routes!(test_rules))
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The rules, in the order they are evaluated (each as a `[[rules]]` table of `vigil.toml`,
/// in JSON).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<RuleConfig>,
}

/// The rules in effect. ManageSettings (admins).
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules",
    responses(
        (status = 200, body = RulesBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn list_rules(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<RulesBody>> {
    caller.require(Permission::ManageSettings, None)?;
    Ok(Json(RulesBody {
        rules: state.settings.in_effect().rules,
    }))
}

/// One rule by name. ManageSettings (admins).
#[utoipa::path(get, path = "/api/v1/rules/{rule}", tag = "rules",
    params(("rule" = String, Path, description = "the rule's name")),
    responses(
        (status = 200, description = "the rule", body = Object),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such rule (`rule_not_found`)", body = ErrorBody),
    ))]
async fn get_rule(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RuleConfig>> {
    caller.require(Permission::ManageSettings, None)?;
    state
        .settings
        .in_effect()
        .rules
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "rule_not_found",
                format!(
                    "no rule named '{}'; GET /api/v1/rules lists them",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// Replaces every rule. The rules are checked like the config file's (a message names the
/// rule and key at fault, e.g. `rules[2].regex`), saved as the `[[rules]]` of `vigil.toml`
/// and in effect for the next event; nothing is staged. ManageSettings (admins).
#[utoipa::path(put, path = "/api/v1/rules", tag = "rules",
    request_body = RulesBody,
    responses(
        (status = 200, description = "the rules now in effect", body = RulesBody),
        (status = 400, description = "rules that are not valid (`bad_request`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn replace_rules(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<RulesBody>> {
    caller.require(Permission::ManageSettings, None)?;
    let req: RulesBody = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("the body is not a list of rules: {e}")))?;
    let saved = state
        .settings
        .replace_rules(req.rules, &caller.actor())
        .await?;
    // Off the async workers: replacing a rule's webhook stops its old sink, which waits for
    // a delivery in flight.
    let alarms = state.alarms.clone();
    let rules = saved.rules.clone();
    blocking(move || alarms.set_rules(&rules))
        .await?
        .map_err(ApiError::from_app)?;
    Ok(Json(RulesBody { rules: saved.rules }))
}

/// An example event for the rule test; what is left out takes the default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExampleEvent {
    /// e.g. `syslog.dot1x_failure`.
    pub kind: String,
    pub message: String,
    /// Default `info`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Default `external`.
    #[serde(default)]
    pub category: Option<String>,
    /// Default `external`.
    #[serde(default)]
    pub source_kind: Option<String>,
    /// Default `rule-test`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub camera: Option<String>,
    /// When it happened, for the rules' schedules (RFC 3339, -1h, now, or Unix seconds).
    /// Default now.
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Which rules fired and what they would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAnswer {
    /// In evaluation order; each with its actions (`alarm`, `bookmark` with its range,
    /// `webhook`, `siem`, or `skipped` with why).
    pub fired: Vec<Firing>,
}

/// Tries an example event on the rules in effect: which rules it fires and which actions
/// would run. Nothing runs: no alarm, bookmark, webhook or event. ManageSettings (admins).
#[utoipa::path(post, path = "/api/v1/rules/test", tag = "rules",
    request_body = ExampleEvent,
    responses(
        (status = 200, body = TestAnswer),
        (status = 400, description = "an example event that is not valid (`bad_event`, `bad_request`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn test_rules(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<TestAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let req: ExampleEvent = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("the body is not an example event: {e}")))?;
    let parse = |what: &str, v: Option<&str>, default: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(bad_request(format!(
                "{what} '{}' is not known (default {default})",
                v.unwrap_or_default().chars().take(32).collect::<String>()
            )))
        }
    };
    let severity = Severity::parse(req.severity.as_deref().unwrap_or("info"));
    parse(
        "severity",
        req.severity.as_deref(),
        "info",
        severity.is_some(),
    )?;
    let category = Category::parse(req.category.as_deref().unwrap_or("external"));
    parse(
        "category",
        req.category.as_deref(),
        "external",
        category.is_some(),
    )?;
    let source_kind = SourceKind::parse(req.source_kind.as_deref().unwrap_or("external"));
    parse(
        "source_kind",
        req.source_kind.as_deref(),
        "external",
        source_kind.is_some(),
    )?;
    let now = now_us();
    let time_us = match req.time.as_deref() {
        Some(t) => parse_time(t, now).map_err(|e| bad_request(format!("time: {e}")))?,
        None => now,
    };
    let event = NewEvent {
        time_us,
        source: Source::new(
            source_kind.unwrap_or(SourceKind::External),
            req.source.unwrap_or_else(|| "rule-test".into()),
        ),
        kind: req.kind,
        category: category.unwrap_or(Category::External),
        severity: severity.unwrap_or(Severity::Info),
        message: req.message,
        camera: req.camera,
        attributes: req.attributes,
    };
    let fired = state.alarms.test(event).map_err(ApiError::from_app)?;
    Ok(Json(TestAnswer { fired }))
}
