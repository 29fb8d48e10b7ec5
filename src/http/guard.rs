//! Who may talk to the API: every request passes here before it reaches a handler.
//!
//! The API controls a plant's telemetry (switch the broker, query machines, change polling) and
//! usually listens on loopback, which is not a boundary against the operator's own browser:
//! any web page it opens can send requests to `127.0.0.1`, and a page whose domain an
//! attacker re-points at `127.0.0.1` (DNS rebinding) can even read the answers. So:
//!
//! - **Host.** A request must name this server by an IP address, `localhost`, or a name in
//!   `http.allowed_hosts`. A rebinding page's requests carry its own domain and are refused.
//! - **Origin.** A state-changing request (anything but GET, HEAD, OPTIONS) from a browser must
//!   come from a page of this server: its `Origin` names the same host, or
//!   `Sec-Fetch-Site` says same-origin. A foreign page's POST is refused before its body is
//!   read. Programs (curl, scripts) send neither header and are judged by the token alone.
//! - **Token.** With `http.token`, state-changing requests need `Authorization: Bearer
//!   <token>` (scheme in any case), compared in constant time. Listening beyond loopback
//!   without a token is refused at start ([`crate::config::check_exposure`]) unless `http.allow_open`, and
//!   then state-changing requests are still refused: only reading is open.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::{HttpConfig, Secret};
use crate::nclink::limits::shown;

/// What the guard checks requests against.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Host names (lower case) accepted besides IP addresses and `localhost`; an entry
    /// `*.example.com` accepts every name under `example.com`.
    pub allowed_hosts: Vec<String>,
    /// Required for state-changing requests when set.
    pub token: Option<Secret>,
    /// Listening beyond loopback without a token (`http.allow_open`): reading is open,
    /// changing is refused.
    pub open: bool,
}

impl From<&HttpConfig> for Guard {
    fn from(http: &HttpConfig) -> Guard {
        Guard {
            allowed_hosts: http.allowed_hosts.clone(),
            token: http.token.clone(),
            open: http.allow_open && http.token.is_none(),
        }
    }
}

impl Guard {
    /// Whether `host` (a `Host` header: name or address, maybe a port) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        if name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix("*.") {
                Some(domain) => name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => name == allowed,
            }
        })
    }

    /// The reason to refuse `method` with these headers, if any.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
        let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or(""));
        // A browser always sends Host; a request without one cannot come from a rebinding page.
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "host {} is not this server's: use its address or localhost, or add the name \
                     to http.allowed_hosts",
                    shown(host)
                ),
            ));
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        if let Some(reason) = cross_origin(headers, host) {
            return Some(ApiError::new(StatusCode::FORBIDDEN, reason));
        }
        match &self.token {
            Some(token) => authorize(token, headers).err(),
            None if self.open => Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "this server is open for reading only (http.allow_open without http.token): \
                 set http.token to allow changes",
            )),
            None => None,
        }
    }
}

/// The middleware: refuses what [`Guard::refusal`] finds, before the handler runs.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match guard.refusal(request.method(), request.headers()) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    }
}

/// The dashboard's Content-Security-Policy: its own scripts, styles and API only. ECharts
/// writes its tooltips as markup with `style` attributes, hence `style-src-attr`; the icon is
/// a `data:` image. No frame may hold the pages (clickjacking).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The middleware adding security headers: every answer is what its type says
/// (`nosniff`); pages may not be framed and get [`CSP`] unless they set their own.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        headers.insert(
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        );
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(CSP),
            );
        }
    }
    response
}

/// Why a state-changing request is cross-origin, if it is.
fn cross_origin(headers: &HeaderMap, host: Option<&str>) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let same = match (authority, host) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
            _ => false,
        };
        if !same {
            return Some(format!(
                "a request from the page {} may not change this server (cross-origin)",
                shown(origin)
            ));
        }
        return None;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin" | "none") | None => None,
        Some(other) => Some(format!(
            "a {} request may not change this server (cross-origin)",
            shown(other)
        )),
    }
}

/// Checks `Authorization: Bearer <token>`.
fn authorize(token: &Secret, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs `Authorization: Bearer <token>`",
        )),
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `1.2.3.4:80`, `[::1]:8080`).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(address, _)| address);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_exposure;
    use std::net::SocketAddr;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let guard = Guard {
            allowed_hosts: vec!["Dashboard.Plant.example".into(), "*.line3.example".into()],
            ..Guard::default()
        };
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "10.0.0.7",
            "dashboard.plant.example:443",
            "cell-2.line3.example",
            "app.localhost:5173",
        ] {
            assert!(guard.host_allowed(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "line3.example",
            "evil-line3.example",
            "127.0.0.1.attacker.example",
            "",
            "[::1",
        ] {
            assert!(!guard.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn foreign_hosts_and_pages_are_refused_and_tokens_checked() {
        let open = Guard::default();
        let get = Method::GET;
        let post = Method::POST;
        assert!(
            open.refusal(&get, &headers(&[("host", "127.0.0.1:8080")]))
                .is_none()
        );
        let rebound = open
            .refusal(&get, &headers(&[("host", "rebind.attacker.example:8080")]))
            .unwrap();
        assert_eq!(rebound.status, StatusCode::FORBIDDEN);
        // A foreign page's POST, by Origin or by Fetch metadata.
        let foreign = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            open.refusal(&post, &foreign).unwrap().status,
            StatusCode::FORBIDDEN
        );
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(open.refusal(&post, &null).is_some());
        let site = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]);
        assert!(open.refusal(&post, &site).is_some());
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(open.refusal(&post, &own).is_none());
        // Tokens: Bearer in any case, compared whole.
        let locked = Guard {
            token: Some(Secret::new("guard-test-token")),
            ..Guard::default()
        };
        for (auth, ok) in [
            ("Bearer guard-test-token", true),
            ("bearer guard-test-token", true),
            ("BEARER  guard-test-token ", true),
            ("Bearer guard-test-toke", false),
            ("Bearer guard-test-token2", false),
            ("Basic guard-test-token", false),
            ("guard-test-token", false),
        ] {
            let h = headers(&[("host", "localhost"), ("authorization", auth)]);
            assert_eq!(locked.refusal(&post, &h).is_none(), ok, "{auth}");
        }
        let none = locked.refusal(&post, &headers(&[])).unwrap();
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        // Open for reading only.
        let read_only = Guard {
            open: true,
            ..Guard::default()
        };
        assert!(read_only.refusal(&get, &headers(&[])).is_none());
        assert_eq!(
            read_only.refusal(&post, &headers(&[])).unwrap().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn exposure_beyond_loopback_needs_a_token_or_allow_open() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(check_exposure(lo, None, false).is_ok());
        let refused = check_exposure(any, None, false).unwrap_err();
        assert!(refused.contains("http.token") && refused.contains("allow_open"));
        assert!(check_exposure(any, Some(&Secret::new("exposure-token")), false).is_ok());
        assert!(check_exposure(any, None, true).is_ok());
        assert!(check_exposure("[::1]:80".parse().unwrap(), None, false).is_ok());
    }
}
