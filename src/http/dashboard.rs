//! The web dashboard, embedded in the binary (built from `ui/` by `build.rs`).
//!
//! `/` serves the app's `index.html` (never cached: it names the current asset files), and
//! `/assets/*` the hashed JavaScript and CSS (cached for a year: a new build has new names).
//! When the dashboard could not be built, `/` says why and lists the API instead.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// Why the dashboard is missing from this build, if it is.
pub fn problem() -> Option<&'static str> {
    assets::UI_PROBLEM
}

fn asset(name: &str) -> Option<&'static [u8]> {
    assets::ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub async fn index() -> Response {
    match asset("index.html") {
        Some(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
        None => {
            let reason = problem().unwrap_or("it is not part of this build");
            let page = include_str!("index.html").replace(
                "<!--dashboard-->",
                &format!(
                    "<p class=\"problem\">The dashboard is not in this build: {}. \
                     Build it with Node.js 20+ and npm installed (<code>cargo build</code> runs \
                     <code>npm ci</code> and <code>npm run build</code> in <code>ui/</code>); \
                     meanwhile the API below works.</p>",
                    escape(reason)
                ),
            );
            // This page styles itself inline and holds no script.
            (
                [(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                     base-uri 'none'; form-action 'none'",
                )],
                Html(page),
            )
                .into_response()
        }
    }
}

pub async fn assets(Path(path): Path<String>) -> Response {
    let name = format!("assets/{path}");
    match asset(&name) {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&name)),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such dashboard file").into_response(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
