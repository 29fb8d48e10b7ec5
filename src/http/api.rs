//! The JSON endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiError;
use crate::config::{BrokerUrl, HumanDuration};
use crate::http::AppState;
use crate::http::state::{Devices, RecentWindows};
use crate::id::Id;
use crate::live::views::LatestValue;
use crate::nclink::status::{MachineState, STATUS_ITEM};
use crate::sample::now_ms;
use crate::source::control::SourceControl;
use crate::time::parse_time;
use crate::window::WindowJson;

/// Most windows one request returns.
pub const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 1_000;

pub(super) type Params = Query<HashMap<String, String>>;

fn last_json(v: &LatestValue) -> Value {
    json!({ "ts": v.ts, "value": v.value().filter(|v| v.is_finite()), "text": v.text.as_deref() })
}

pub(super) fn required<'a>(
    params: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing parameter `{name}`")))
}

pub(super) fn time_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            parse_time(v).map_err(|e| {
                ApiError::bad_request(format!(
                    "bad `{name}` {}: {e}; use RFC 3339 (2025-11-25T16:00:00Z) or ms since the epoch",
                    crate::nclink::limits::shown(v)
                ))
            })
        })
        .transpose()
}

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Serialize)]
struct DeviceJson {
    device: Id,
    items: usize,
    last_seen: Option<i64>,
    status: MachineState,
    /// Samples received from the device.
    samples: i64,
}

pub async fn devices(State(known): State<Devices>) -> Json<Value> {
    let mut devices: BTreeMap<Id, DeviceJson> = BTreeMap::new();
    for (device, info) in known.registry.all() {
        devices.insert(
            device.clone(),
            DeviceJson {
                device,
                items: 0,
                last_seen: Some(info.last_seen),
                status: MachineState::Unknown,
                samples: 0,
            },
        );
    }
    let counts = known.views.samples_per_device();
    for device in known.views.devices() {
        let latest = known.views.latest(&device).unwrap_or_default();
        let entry = devices.entry(device.clone()).or_insert(DeviceJson {
            device: device.clone(),
            items: 0,
            last_seen: None,
            status: MachineState::Unknown,
            samples: 0,
        });
        entry.samples = counts.get(&device).copied().unwrap_or(0);
        entry.items = latest.len();
        if let Some(status) = latest.get(STATUS_ITEM) {
            entry.status = status.state();
        }
    }
    Json(json!(devices.into_values().collect::<Vec<_>>()))
}

pub async fn items(
    State(known): State<Devices>,
    Path(device): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !known.known(&device) {
        return Err(ApiError::not_found(format!("unknown device {device:?}")));
    }
    let latest = known.views.latest(&device).unwrap_or_default();
    let model = known.registry.get(&device).and_then(|i| i.model);
    let mut out = Vec::new();
    let mut listed = std::collections::HashSet::new();
    if let Some(model) = &model {
        for item in &model.items {
            listed.insert(item.id.clone());
            out.push(json!({
                "item": &*item.id,
                "name": item.name,
                "type": item.kind,
                "path": item.path,
                "last": latest.get(&item.id).map(last_json),
            }));
        }
    }
    // Values of items the model does not list (indexed items, a model not yet received).
    for (item, value) in &latest {
        if !listed.contains(item) {
            out.push(
                json!({ "item": &**item, "name": null, "type": null, "last": last_json(value) }),
            );
        }
    }
    Ok(Json(Value::Array(out)))
}

pub async fn latest(
    State(known): State<Devices>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let device = required(&params, "device")?;
    if !known.known(device) {
        return Err(ApiError::not_found(format!("unknown device {device:?}")));
    }
    let latest = known.views.latest(device).unwrap_or_default();
    let items: BTreeMap<&str, Value> = match params.get("item") {
        Some(item) => {
            let value = latest.get(item.as_str()).ok_or_else(|| {
                ApiError::not_found(format!("no value for item {item:?} of {device:?}"))
            })?;
            BTreeMap::from([(item.as_str(), last_json(value))])
        }
        None => latest.iter().map(|(k, v)| (&**k, last_json(v))).collect(),
    };
    Ok(Json(json!({ "device": device, "items": items })))
}

pub async fn windows(
    State(known): State<Devices>,
    State(recent): State<RecentWindows>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let device = required(&params, "device")?;
    let item = required(&params, "item")?;
    let size_text = required(&params, "size")?;
    let size: HumanDuration = size_text
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("bad `size`: {e}")))?;
    let size_ms = size.as_millis() as i64;
    if !recent.sizes.contains(&size_ms) {
        let sizes: Vec<String> = recent
            .sizes
            .iter()
            .map(|s| HumanDuration::from_millis(*s as u64).to_string())
            .collect();
        return Err(ApiError::bad_request(format!(
            "no {size} windows are computed; sizes: {}",
            sizes.join(", ")
        )));
    }
    let from = time_param(&params, "from")?.unwrap_or(i64::MIN);
    let to = time_param(&params, "to")?.unwrap_or(i64::MAX);
    if from > to {
        return Err(ApiError::bad_request("`from` is after `to`"));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "bad `limit` {l:?}: a number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    if !known.known(device) {
        return Err(ApiError::not_found(format!("unknown device {device:?}")));
    }
    let rows: Vec<Value> = recent
        .store
        .query(device, item, size_ms, from, to, limit)
        .iter()
        .map(WindowJson::row)
        .collect();
    Ok(Json(
        json!({ "device": device, "item": item, "size_ms": size_ms, "windows": rows }),
    ))
}

pub async fn fleet(State(known): State<Devices>) -> Json<Value> {
    let fleet = known.views.fleet();
    Json(json!({
        "running": fleet[&MachineState::Running],
        "free": fleet[&MachineState::Free],
        "holding": fleet[&MachineState::Holding],
        "unknown": fleet[&MachineState::Unknown],
    }))
}

pub async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(status_json(&state))
}

/// The status document: the same metric lists `/metrics` renders, by key.
pub(super) fn status_json(state: &AppState) -> Value {
    let mut source = crate::metrics::json_object(&state.metrics.source_metrics());
    source.insert("broker".into(), state.source.broker().into());
    let mut top = crate::metrics::json_object(&state.metrics.engine_metrics());
    top.insert("source".into(), source.into());
    top.insert("watermark".into(), json!(state.metrics.engine.watermark()));
    top.insert(
        "window_sizes".into(),
        json!(
            state
                .window_sizes
                .iter()
                .map(|ms| HumanDuration::from_millis(*ms as u64).to_string())
                .collect::<Vec<_>>()
        ),
    );
    top.insert(
        "sinks".into(),
        state.sinks.iter().map(|s| s.status().json()).collect(),
    );
    top.insert(
        "wal".into(),
        state.wal.as_ref().map_or(Value::Null, |w| {
            let mut wal = crate::metrics::json_object(&w.metrics());
            wal.insert("enabled".into(), true.into());
            wal.into()
        }),
    );
    top.insert(
        "uptime_ms".into(),
        (state.started.elapsed().as_millis() as u64).into(),
    );
    top.insert("now".into(), now_ms().into());
    top.into()
}

pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {}", e.body_text())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    url: String,
}

pub async fn reconnect(
    State(source): State<SourceControl>,
    payload: Result<Json<SourceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(payload)?;
    let url: BrokerUrl = request.url.parse().map_err(ApiError::bad_request)?;
    source
        .reconnect(url.clone())
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "broker": url.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    device: String,
    items: Vec<String>,
}

pub async fn query(
    State(known): State<Devices>,
    State(source): State<SourceControl>,
    payload: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(payload)?;
    if request.items.is_empty() || request.items.iter().any(|i| i.is_empty()) {
        return Err(ApiError::bad_request(
            "`items` must list at least one non-empty NC-Link item id",
        ));
    }
    if !known.known(&request.device) {
        return Err(ApiError::not_found(format!(
            "unknown device {:?}",
            request.device
        )));
    }
    let request_id = source
        .query(request.device, request.items)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "request_id": request_id })))
}
