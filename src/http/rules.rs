//! `GET|POST /api/v1/rules`: the recording-rule groups in Prometheus' JSON
//! shape, so Grafana's rule views work. Filters: `type=record|alert`,
//! `rule_name[]`, `rule_group[]`, `file[]`, `exclude_alerts`.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::http::api::{ApiError, Params, success};

pub async fn api_rules(req: Request<Body>) -> Response {
    let p = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let filter = match crate::rules::RulesFilter::parse(
        p.get("type"),
        p.all("rule_name[]"),
        p.all("rule_group[]"),
        p.all("file[]"),
        p.get("exclude_alerts"),
    ) {
        Ok(f) => f,
        Err(e) => return ApiError::bad_data(e).into_response(),
    };
    success(
        crate::rules::rules_json(&crate::rules::groups(), &filter),
        &[],
    )
}
