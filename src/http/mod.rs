//! The HTTP API (DESIGN.md §8): JSON over axum, Server-Sent Events for live data, Prometheus
//! metrics, and the embedded dashboard ([`dashboard`]). `app(state)` builds the router, so tests can call it
//! without a socket.
//!
//! Errors are `{"error": "…"}`: 400 for a bad parameter or body (with the reason), 401 for a
//! missing or wrong token on POST endpoints (when `http.token` is set), 403 for a foreign host
//! or page ([`guard`]), 404 for an unknown device, 409 for a command to devices while a replay
//! runs in the source's place, 502 when the broker or device cannot be reached or does not
//! answer, 503 when too many event streams are open or the engine is stopping. The status of
//! a failed source command comes from its type (`ControlError`); no answer names a file path.
//!
//! Layout: [`guard`] (who may talk to the API, security headers), [`api`] (JSON endpoints),
//! [`history`] (windows from the lake), [`poll`] (polling settings), [`sse`] (events),
//! [`prometheus`] (`/metrics`).

mod api;
pub mod dashboard;
mod guard;
mod history;
mod poll;
mod prometheus;
mod sse;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use guard::Guard;
pub use state::AppState;

/// The router.
pub fn app(state: Arc<AppState>) -> Router {
    let guard = Arc::new(state.guard.clone());
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{*path}", get(dashboard::assets))
        .route("/api/v1/health", get(api::health))
        .route("/api/v1/devices", get(api::devices))
        .route("/api/v1/devices/{device}/items", get(api::items))
        .route("/api/v1/latest", get(api::latest))
        .route("/api/v1/windows", get(api::windows))
        .route("/api/v1/history", get(history::history))
        .route("/api/v1/fleet", get(api::fleet))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/events", get(sse::events))
        .route("/api/v1/source", post(api::reconnect))
        .route("/api/v1/query", post(api::query))
        .route("/api/v1/poll", get(poll::get).post(poll::set))
        .route("/metrics", get(prometheus::metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; GET / lists them")
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(guard::headers))
        .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}

/// The API of a cluster process other than 0 (DESIGN.md §10): its own health and metrics;
/// everything else is served, for the whole cluster, by process 0.
pub fn peer_app(state: Arc<AppState>, process: usize) -> Router {
    let guard = Arc::new(state.guard.clone());
    Router::new()
        .route("/api/v1/health", get(api::health))
        .route("/metrics", get(prometheus::metrics))
        .fallback(move || async move {
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this is process {process} of a cluster: it serves /api/v1/health and /metrics; \
                     process 0 serves the API and the dashboard for the whole cluster"
                ),
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(guard::headers))
        .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}

/// An error answer: status and a reason for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }
}

/// Each reason a source command fails has its status: replaying 409, stopping 503, a request
/// refused as given 400, the broker or device (or no source at all) 502.
impl From<crate::source::control::ControlError> for ApiError {
    fn from(e: crate::source::control::ControlError) -> ApiError {
        use crate::source::control::ControlError as E;
        let status = match &e {
            E::Replaying(_) => StatusCode::CONFLICT,
            E::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            E::Refused(_) => StatusCode::BAD_REQUEST,
            E::Detached | E::Source(_) => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.reason })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests;
