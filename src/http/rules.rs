//! `GET|POST /api/v1/rules`: the rule groups in Prometheus' JSON shape, so
//! Grafana's rule views work. Filters: `type=record|alert`, `rule_name[]`,
//! `rule_group[]`, `file[]`, `exclude_alerts`. `GET|POST /api/v1/alerts`:
//! every pending and firing alert.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tessera_query::rules::template::go_float;
use tessera_query::rules::{Alert, GroupStatus, RuleKind};

use super::AppStateRef;
use super::api::{ApiError, Params, success};

pub(super) async fn api_rules(state: AppStateRef, req: Request<Body>) -> Response {
    let p = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let filter = match RulesFilter::parse(
        p.get("type"),
        p.all("rule_name[]"),
        p.all("rule_group[]"),
        p.all("file[]"),
        p.get("exclude_alerts"),
    ) {
        Ok(f) => f,
        Err(e) => return ApiError::bad_data(e).into_response(),
    };
    success(rules_json(&state.rules.groups(), &filter), &[])
}

pub(super) async fn api_alerts(state: AppStateRef) -> Response {
    success(alerts_json(&state.rules.groups()), &[])
}

/// The `data` of `/api/v1/alerts`: `{"alerts": [...]}`.
fn alerts_json(groups: &[GroupStatus]) -> Value {
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .flat_map(|r| &r.alerts)
        .map(alert_json)
        .collect();
    json!({ "alerts": alerts })
}

/// One alert as Prometheus' API shows it (`value` in Go's `%e` shortest
/// form, as Prometheus formats it).
fn alert_json(a: &Alert) -> Value {
    let pairs = |it: &mut dyn Iterator<Item = (String, String)>| -> Map<String, Value> {
        it.map(|(k, v)| (k, json!(v))).collect()
    };
    let mut o = Map::new();
    o.insert(
        "labels".into(),
        Value::Object(pairs(
            &mut a
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string())),
        )),
    );
    o.insert(
        "annotations".into(),
        Value::Object(pairs(&mut a.annotations.iter().cloned())),
    );
    o.insert("state".into(), json!(a.state.as_str()));
    o.insert("activeAt".into(), json!(go_time(Some(a.active_at_ms))));
    if let Some(t) = a.keep_firing_since_ms {
        o.insert("keepFiringSince".into(), json!(go_time(Some(t))));
    }
    o.insert("value".into(), json!(go_float(a.value, 'e', None)));
    Value::Object(o)
}

/// `/api/v1/rules` filters, as Prometheus reads them.
#[derive(Debug, Default, PartialEq)]
struct RulesFilter {
    kind: Option<RuleKind>,
    rule_names: HashSet<String>,
    groups: HashSet<String>,
    files: HashSet<String>,
    exclude_alerts: bool,
}

impl RulesFilter {
    /// From the `type`, `rule_name[]`, `rule_group[]`, `file[]` and
    /// `exclude_alerts` parameters; the error is Prometheus' message.
    fn parse<'a>(
        kind: Option<&str>,
        rule_names: impl Iterator<Item = &'a str>,
        groups: impl Iterator<Item = &'a str>,
        files: impl Iterator<Item = &'a str>,
        exclude_alerts: Option<&str>,
    ) -> Result<RulesFilter, String> {
        let kind = match kind.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => None,
            Some("alert") => Some(RuleKind::Alerting),
            Some("record") => Some(RuleKind::Recording),
            Some(other) => {
                return Err(format!(
                    "invalid parameter \"type\": not supported value {other:?}"
                ));
            }
        };
        let exclude_alerts = match exclude_alerts {
            None | Some("") => false,
            Some(s) => parse_bool(s).ok_or_else(|| {
                format!("invalid parameter \"exclude_alerts\": strconv.ParseBool: parsing {s:?}: invalid syntax")
            })?,
        };
        let set = |it: &mut dyn Iterator<Item = &'a str>| {
            it.filter(|s| !s.is_empty()).map(String::from).collect()
        };
        Ok(RulesFilter {
            kind,
            rule_names: set(&mut { rule_names }),
            groups: set(&mut { groups }),
            files: set(&mut { files }),
            exclude_alerts,
        })
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The `data` of `/api/v1/rules`: `{"groups": [...]}` in Prometheus' shape.
/// Groups left without rules by the filters are left out, as Prometheus does.
fn rules_json(groups: &[GroupStatus], f: &RulesFilter) -> Value {
    let mut out = Vec::new();
    for g in groups {
        if (!f.groups.is_empty() && !f.groups.contains(&g.name))
            || (!f.files.is_empty() && !f.files.contains(&g.file))
        {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| f.kind.is_none_or(|k| k == r.kind))
            .filter(|r| f.rule_names.is_empty() || f.rule_names.contains(&r.name))
            .map(|r| {
                let mut o = Map::new();
                let labels: Map<String, Value> = r
                    .labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                match r.kind {
                    RuleKind::Recording => {
                        o.insert("name".into(), json!(r.name));
                        o.insert("query".into(), json!(r.query));
                        if !labels.is_empty() {
                            o.insert("labels".into(), Value::Object(labels));
                        }
                    }
                    RuleKind::Alerting => {
                        o.insert("state".into(), json!(r.state.as_str()));
                        o.insert("name".into(), json!(r.name));
                        o.insert("query".into(), json!(r.query));
                        o.insert("duration".into(), json!(r.for_ms as f64 / 1000.0));
                        o.insert(
                            "keepFiringFor".into(),
                            json!(r.keep_firing_for_ms as f64 / 1000.0),
                        );
                        o.insert("labels".into(), Value::Object(labels));
                        let ann: Map<String, Value> = r
                            .annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        o.insert("annotations".into(), Value::Object(ann));
                        if !f.exclude_alerts {
                            let alerts: Vec<Value> = r.alerts.iter().map(alert_json).collect();
                            o.insert("alerts".into(), Value::Array(alerts));
                        }
                    }
                }
                o.insert("health".into(), json!(r.health.as_str()));
                if let Some(e) = &r.last_error {
                    o.insert("lastError".into(), json!(e));
                }
                o.insert(
                    "evaluationTime".into(),
                    json!(r.evaluation_time.as_secs_f64()),
                );
                o.insert(
                    "lastEvaluation".into(),
                    json!(go_time(r.last_evaluation_ms)),
                );
                o.insert(
                    "type".into(),
                    json!(match r.kind {
                        RuleKind::Recording => "recording",
                        RuleKind::Alerting => "alerting",
                    }),
                );
                Value::Object(o)
            })
            .collect();
        if rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": g.interval_ms as f64 / 1000.0,
            "limit": g.limit,
            "evaluationTime": g.evaluation_time.as_secs_f64(),
            "lastEvaluation": go_time(g.last_evaluation_ms),
        }));
    }
    json!({ "groups": out })
}

/// Go's `time.Time` JSON (RFC 3339, nanosecond precision with trailing
/// zeros trimmed, UTC); never evaluated is Go's zero time, as Prometheus
/// reports it.
fn go_time(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "0001-01-01T00:00:00Z".into(),
        tessera_query::time::rfc3339_trimmed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::sample_groups;

    #[test]
    fn renders_groups_in_prometheus_shape() {
        let v = rules_json(&sample_groups(), &RulesFilter::default());
        let g = &v["groups"][0];
        assert_eq!(g["name"], "node");
        assert_eq!(g["file"], "/etc/rules/node.yml");
        assert_eq!(g["interval"], 30.0);
        assert_eq!(g["limit"], 0);
        assert_eq!(g["lastEvaluation"], "2023-11-14T22:13:20Z");
        assert_eq!(g["evaluationTime"], 0.005);
        let r = &g["rules"][0];
        assert_eq!(r["type"], "recording");
        assert_eq!(r["name"], "job:up:sum");
        assert_eq!(r["query"], "sum by (job) (up)");
        assert_eq!(r["labels"], json!({"team": "gpu"}));
        assert_eq!(r["health"], "ok");
        assert!(r.get("lastError").is_none());
        assert_eq!(r["lastEvaluation"], "2023-11-14T22:13:20.12Z");
        assert_eq!(g["rules"][1]["health"], "err");
        assert_eq!(
            g["rules"][1]["lastError"],
            "exceeded limit of 1 with 2 series"
        );
        let a = &v["groups"][1]["rules"][0];
        assert_eq!(a["type"], "alerting");
        assert_eq!(a["state"], "inactive");
        assert_eq!(a["health"], "unknown");
        assert_eq!(a["duration"], 300.0);
        assert_eq!(a["alerts"], json!([]));
        assert_eq!(a["lastEvaluation"], "0001-01-01T00:00:00Z");
        assert!(a.get("lastError").is_none());
        let hot = &v["groups"][1]["rules"][1];
        assert_eq!(hot["state"], "firing");
        assert_eq!(hot["health"], "ok");
        assert_eq!(hot["annotations"], json!({"summary": "n1 is hot"}));
        assert_eq!(
            hot["alerts"],
            json!([{
                "labels": {"alertname": "Hot", "node": "n1"},
                "annotations": {"summary": "n1 is hot"},
                "state": "firing",
                "activeAt": "2023-11-14T22:13:20Z",
                "value": "9.15e+01",
            }])
        );
    }

    #[test]
    fn alerts_lists_every_active_alert() {
        let v = alerts_json(&sample_groups());
        let alerts = v["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["labels"]["alertname"], "Hot");
        assert_eq!(alerts[0]["state"], "firing");
        assert_eq!(alerts_json(&[]), json!({"alerts": []}));
    }

    #[test]
    fn filters_select_rules_and_drop_emptied_groups() {
        let groups = sample_groups();
        let names = |f: RulesFilter| -> Vec<String> {
            rules_json(&groups, &f)["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| {
                    g["rules"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["name"].as_str().unwrap().to_string())
                })
                .collect()
        };
        let f = |kind: Option<&str>, rn: &[&str], rg: &[&str], file: &[&str]| {
            RulesFilter::parse(
                kind,
                rn.iter().copied(),
                rg.iter().copied(),
                file.iter().copied(),
                None,
            )
            .unwrap()
        };
        assert_eq!(
            names(f(None, &[], &[], &[])),
            ["job:up:sum", "job:bad", "Down", "Hot"]
        );
        assert_eq!(
            names(f(Some("record"), &[], &[], &[])),
            ["job:up:sum", "job:bad"]
        );
        assert_eq!(names(f(Some("alert"), &[], &[], &[])), ["Down", "Hot"]);
        assert_eq!(names(f(None, &["job:bad"], &[], &[])), ["job:bad"]);
        assert_eq!(names(f(None, &[], &["alerts"], &[])), ["Down", "Hot"]);
        assert_eq!(
            names(f(None, &[], &[], &["/etc/rules/node.yml"])),
            ["job:up:sum", "job:bad"]
        );
        assert!(names(f(Some("alert"), &[], &["node"], &[])).is_empty());
        let err = RulesFilter::parse(
            Some("both"),
            [].into_iter(),
            [].into_iter(),
            [].into_iter(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "invalid parameter \"type\": not supported value \"both\""
        );
        assert!(
            RulesFilter::parse(
                None,
                [].into_iter(),
                [].into_iter(),
                [].into_iter(),
                Some("maybe")
            )
            .is_err()
        );
        let ex = RulesFilter::parse(
            None,
            [].into_iter(),
            [].into_iter(),
            [].into_iter(),
            Some("true"),
        )
        .unwrap();
        assert!(
            rules_json(&groups, &ex)["groups"][1]["rules"][0]
                .get("alerts")
                .is_none()
        );
    }

    #[test]
    fn formats_times_like_go() {
        assert_eq!(go_time(None), "0001-01-01T00:00:00Z");
        assert_eq!(go_time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(Some(1_435_781_451_500)), "2015-07-01T20:10:51.5Z");
    }
}
