//! `GET /api/v1/history?device=D&item=I&every=1m[&from&to]`: windows computed from the Parquet
//! lake (the same computation as `millstream analyze`), for time ranges older than the live
//! windows kept in memory. Limits keep one request from occupying the machine: at most
//! [`MAX_RANGE_MS`] of event time, at most [`MAX_WINDOWS`] windows, and [`CONCURRENT`] scans at
//! once (others wait their turn).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use super::api::{Params, required, time_param};
use crate::config::HumanDuration;
use crate::http::state::LakeDir;
#[cfg(feature = "analyze")]
use crate::lake::analyze::{self, Selection};
use crate::sample::now_ms;
use crate::window::WindowJson;

/// Longest time range one request may cover.
pub const MAX_RANGE_MS: i64 = 31 * 86_400_000;
/// Most windows one request may ask for (range / every).
pub const MAX_WINDOWS: i64 = 10_000;
/// Range when `from` is not given: the day before `to`.
const DEFAULT_RANGE_MS: i64 = 86_400_000;
/// Lake scans running at once.
#[cfg(feature = "analyze")]
const CONCURRENT: usize = 2;

#[cfg(feature = "analyze")]
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT))
}

pub async fn history(
    State(LakeDir(lake)): State<LakeDir>,
    axum::extract::Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let device = required(&params, "device")?.to_string();
    let item = required(&params, "item")?.to_string();
    let every_text = required(&params, "every")?;
    let every: HumanDuration = every_text
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("bad `every`: {e}")))?;
    let every_ms = every.as_millis() as i64;
    if !(1_000..=MAX_RANGE_MS).contains(&every_ms) {
        return Err(ApiError::bad_request(format!(
            "`every` must be at least 1s and at most {} days",
            MAX_RANGE_MS / 86_400_000
        )));
    }
    // Parsed times lie within the years 0000–9999, so the sums below cannot overflow.
    let to = time_param(&params, "to")?.unwrap_or_else(now_ms);
    let from = time_param(&params, "from")?.unwrap_or(to - DEFAULT_RANGE_MS);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::bad_request(format!(
            "the range is over {} days; ask for at most {} days at once",
            (to - from) / 86_400_000,
            MAX_RANGE_MS / 86_400_000
        )));
    }
    let windows = (to - from + every_ms - 1) / every_ms;
    if windows > MAX_WINDOWS {
        return Err(ApiError::bad_request(format!(
            "{windows} windows of {every} asked for, at most {MAX_WINDOWS}: use a larger `every` or a shorter range"
        )));
    }
    let Some(lake) = lake else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no Parquet lake is configured (a `[[sinks]]` of kind \"parquet\")",
        ));
    };
    let (rows, skipped) = read(lake, device.clone(), item.clone(), from, to, every_ms).await?;
    let rows: Vec<Value> = rows.iter().map(WindowJson::row).collect();
    Ok(Json(json!({
        "device": device,
        "item": item,
        "every_ms": every_ms,
        "from": from,
        "to": to,
        "windows": rows,
        "skipped_files": skipped,
    })))
}

/// The windows of `every_ms` over `[from, to)` of one item, from the lake; and how many of
/// its files could not be read.
#[cfg(feature = "analyze")]
async fn read(
    lake: std::path::PathBuf,
    device: String,
    item: String,
    from: i64,
    to: i64,
    every_ms: i64,
) -> Result<(Vec<crate::window::WindowRow>, usize), ApiError> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let selection = Selection {
        device: Some(device.clone()),
        item: Some(item.clone()),
        from: Some(from),
        to: Some(to),
    };
    // polars blocks (and uses its own threads): keep it off the async workers.
    let analysis =
        tokio::task::spawn_blocking(move || analyze::windows(&lake, &selection, every_ms, &mut ()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the history query failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the history query failed",
                )
            })?
            .map_err(|e| match e {
                // No lake yet (nothing written): no history, not an error.
                analyze::AnalyzeError::Listing { error, .. }
                    if error.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                // The error names the lake's files: they go to the log, not to the caller.
                e => {
                    tracing::error!(error = %e, "cannot read the lake for a history query");
                    Some(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot read the lake (the engine's log says why)",
                    ))
                }
            });
    match analysis {
        Ok(a) => Ok((a.rows, a.skipped.len())),
        Err(None) => Ok((Vec::new(), 0)),
        Err(Some(e)) => Err(e),
    }
}

#[cfg(not(feature = "analyze"))]
async fn read(
    _lake: std::path::PathBuf,
    _device: String,
    _item: String,
    _from: i64,
    _to: i64,
    _every_ms: i64,
) -> Result<(Vec<crate::window::WindowRow>, usize), ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "this millstream is built without the analyze feature: no history from the lake",
    ))
}
