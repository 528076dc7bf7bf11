//! Failure injection: per listener, path prefix and method, delay requests and/or answer them
//! with 429 (with `Retry-After`) or a 5xx status, for the first N matches or forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{FaultRule, Service};
use crate::stats::{Counter, Stats};

/// The active rules, replaceable at run time.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<ActiveRule>>,
}

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    remaining: Option<u32>,
}

/// What to do with one request.
#[derive(Debug, Default, PartialEq, Eq)]
struct Action {
    latency: Option<Duration>,
    status: Option<(u16, Option<u32>)>,
}

impl Faults {
    /// Rules from the configuration.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        let faults = Self::default();
        faults.replace(rules);
        faults
    }

    /// Replaces every rule.
    pub fn replace(&self, rules: Vec<FaultRule>) {
        let active = rules
            .into_iter()
            .map(|rule| ActiveRule {
                remaining: rule.times,
                rule,
            })
            .collect();
        *self.rules.lock().expect("fault rules lock") = active;
    }

    /// The first matching rule with uses left decides; its use count goes down.
    fn action(&self, service: Service, method: &str, path: &str) -> Action {
        let mut rules = self.rules.lock().expect("fault rules lock");
        for active in rules.iter_mut() {
            let rule = &active.rule;
            let matches = rule.service == service
                && path.starts_with(&rule.path)
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !matches || active.remaining == Some(0) {
                continue;
            }
            if let Some(n) = &mut active.remaining {
                *n -= 1;
            }
            return Action {
                latency: rule.latency_ms.map(Duration::from_millis),
                status: rule.status.map(|s| (s, rule.retry_after_secs)),
            };
        }
        Action::default()
    }
}

/// State for the middleware of one listener.
#[derive(Debug, Clone)]
pub struct FaultLayerState {
    /// Which listener this is.
    pub service: Service,
    /// The shared rules.
    pub faults: Arc<Faults>,
    /// Where injected faults are counted.
    pub stats: Arc<Stats>,
}

/// Axum middleware applying the rules.
pub async fn inject(
    State(state): State<FaultLayerState>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/_emulator/") {
        return next.run(request).await;
    }
    let action = state.faults.action(
        state.service,
        request.method().as_str(),
        request.uri().path(),
    );
    if action == Action::default() {
        return next.run(request).await;
    }
    state.stats.bump(Counter::InjectedFaults);
    if let Some(latency) = action.latency {
        tokio::time::sleep(latency).await;
    }
    let Some((status, retry_after)) = action.status else {
        return next.run(request).await;
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "Throttled",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalServerError",
    };
    let body = serde_json::json!({
        "error": { "code": code, "message": format!("Injected by the emulator's fault rules ({status}).") }
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, times: Option<u32>) -> FaultRule {
        FaultRule {
            service: Service::Keyvault,
            path: path.into(),
            method: Some("GET".into()),
            status: Some(429),
            retry_after_secs: Some(1),
            latency_ms: None,
            times,
        }
    }

    #[test]
    fn rules_match_by_service_path_method_and_run_out() {
        let faults = Faults::new(vec![rule("/secrets/a", Some(2))]);
        let hit = Action {
            latency: None,
            status: Some((429, Some(1))),
        };
        assert_eq!(
            faults.action(Service::Entra, "GET", "/secrets/a"),
            Action::default()
        );
        assert_eq!(
            faults.action(Service::Keyvault, "PUT", "/secrets/a"),
            Action::default()
        );
        assert_eq!(
            faults.action(Service::Keyvault, "GET", "/secrets/b"),
            Action::default()
        );
        assert_eq!(
            faults.action(Service::Keyvault, "get", "/secrets/a/v1"),
            hit
        );
        assert_eq!(faults.action(Service::Keyvault, "GET", "/secrets/a"), hit);
        assert_eq!(
            faults.action(Service::Keyvault, "GET", "/secrets/a"),
            Action::default()
        );
    }
}
