//! `GET /api/v1/events[?device=D]`: live `sample` and `window` events. Each client reads from
//! the bounded broadcast; one that falls behind skips what it missed (told by a `lagged` event
//! with the count) instead of holding memory. Events are bounded in bytes
//! ([`crate::live::bus::MAX_EVENT_BYTES`]) and clients in number (`http.sse_clients`;
//! more get 503), so the memory all streams hold together is bounded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::ApiError;
use crate::http::state::EventStreams;
use crate::metrics::Metrics;
use axum::http::StatusCode;

pub async fn events(
    State(streams): State<EventStreams>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let device = params.get("device").cloned();
    let metrics = streams.metrics.clone();
    let before = metrics.engine.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(metrics.clone());
    if before >= streams.max_clients as u64 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event streams are open already (http.sse_clients); try again later",
                streams.max_clients
            ),
        ));
    }
    let stream = BroadcastStream::new(streams.bus.subscribe()).filter_map(move |event| {
        let _keep = &guard;
        let out = match event {
            Ok(event) => (device.as_deref().is_none_or(|d| d == &*event.device))
                .then(|| Ok(Event::default().event(event.kind).data(event.data.clone()))),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                metrics.engine.sse_lagged.fetch_add(n, Ordering::Relaxed);
                Some(Ok(Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}"))))
            }
        };
        std::future::ready(out)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Counts connected clients.
struct ClientGuard(Arc<Metrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.engine.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}
