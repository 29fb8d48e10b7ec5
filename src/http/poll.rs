//! `GET /api/v1/poll` and `POST /api/v1/poll`: the NC-Link polling of the running source (the
//! Collection page's polling settings): which items are asked for with `Query/Request`, how
//! often, of which devices. A change applies at once and lasts until the next restart (the
//! pipeline file's `source.poll` is the setting at start).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::api::body;
use crate::config::{HumanDuration, PollConfig};
use crate::source::control::SourceControl;

/// Shortest polling interval accepted.
const MIN_INTERVAL_MS: u64 = 100;
/// Most items one poll may ask for.
const MAX_ITEMS: usize = 200;

fn poll_json(poll: &Option<PollConfig>) -> Value {
    match poll {
        None => json!({ "poll": null }),
        Some(p) => json!({ "poll": {
            "interval": p.interval.to_string(),
            "items": p.items,
            "timeout": p.effective_timeout().to_string(),
            "devices": p.devices,
        }}),
    }
}

pub async fn get(State(source): State<SourceControl>) -> Json<Value> {
    Json(poll_json(&source.poll()))
}

/// `{"interval": "1s", "items": ["…"], "devices": ["STRESS_TEST_*"], "timeout": "2s"}`;
/// `{"interval": null}` stops polling.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    interval: Option<String>,
    #[serde(default)]
    items: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
}

fn duration(name: &str, text: &str) -> Result<HumanDuration, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError::bad_request(format!("bad `{name}`: {e}")))
}

pub async fn set(
    State(source): State<SourceControl>,
    payload: Result<Json<PollBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(payload)?;
    let poll = match request.interval {
        None => {
            if !request.items.is_empty() {
                return Err(ApiError::bad_request(
                    "`items` without an `interval`: give both, or `\"interval\": null` to stop polling",
                ));
            }
            None
        }
        Some(text) => {
            let interval = duration("interval", &text)?;
            if interval.as_millis() < MIN_INTERVAL_MS {
                return Err(ApiError::bad_request(format!(
                    "`interval` must be at least {MIN_INTERVAL_MS}ms"
                )));
            }
            if request.items.is_empty() || request.items.iter().any(|i| i.trim().is_empty()) {
                return Err(ApiError::bad_request(
                    "`items` must list at least one non-empty NC-Link item id",
                ));
            }
            if request.items.len() > MAX_ITEMS {
                return Err(ApiError::bad_request(format!(
                    "at most {MAX_ITEMS} items per poll"
                )));
            }
            let timeout = request
                .timeout
                .as_deref()
                .map(|t| duration("timeout", t))
                .transpose()?;
            Some(PollConfig {
                interval,
                items: request.items,
                timeout,
                devices: request.devices,
            })
        }
    };
    source
        .set_poll(poll.clone())
        .await
        .map_err(ApiError::from)?;
    Ok(Json(poll_json(&poll)))
}
