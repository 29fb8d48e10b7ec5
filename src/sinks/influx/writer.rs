//! The InfluxDB sink's one write: a batch encoded once as line protocol, compressed and
//! posted; the server's answer mapped to the write loop's retry rules.

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;

use super::{Api, REQUEST_TIMEOUT, line_protocol};
use crate::config::{InfluxConfig, Secret, redact_secrets};
use crate::sinks::writer::{Batch, BatchWriter, WriteError};

/// The store's side of an InfluxDB sink.
pub struct InfluxWriter {
    client: reqwest::Client,
    base: url::Url,
    write_url: url::Url,
    api: Api,
    /// 1.x: the database has been created (or we may not).
    ready: bool,
    body: String,
    /// Points left out because they had no writable field (non-finite values only).
    pub skipped: u64,
}

impl InfluxWriter {
    pub fn from_config(config: &InfluxConfig) -> Result<InfluxWriter, String> {
        InfluxWriter::new(config.url.as_str(), config.api.clone())
    }

    pub fn new(url: &str, api: Api) -> Result<InfluxWriter, String> {
        let base = url::Url::parse(url)
            .map_err(|e| format!("bad InfluxDB URL {:?}: {e}", redact_secrets(url)))?;
        if let Some(password) = base.password() {
            let _ = Secret::new(password);
        }
        let mut write_url = base.clone();
        {
            let prefix = base.path().trim_end_matches('/');
            let mut query = write_url.query_pairs_mut();
            query.clear();
            match &api {
                Api::V1 { database, .. } => {
                    query
                        .append_pair("db", database)
                        .append_pair("precision", "ms");
                }
                Api::V2 { org, bucket, .. } => {
                    query
                        .append_pair("org", org)
                        .append_pair("bucket", bucket)
                        .append_pair("precision", "ms");
                }
            }
            drop(query);
            let path = match &api {
                Api::V1 { .. } => format!("{prefix}/write"),
                Api::V2 { .. } => format!("{prefix}/api/v2/write"),
            };
            write_url.set_path(&path);
        }
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let ready = matches!(api, Api::V2 { .. });
        Ok(InfluxWriter {
            client,
            base,
            write_url,
            api,
            ready,
            body: String::new(),
            skipped: 0,
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api {
            Api::V1 {
                username: Some(user),
                password,
                ..
            } => request.basic_auth(user, password.as_ref().map(Secret::expose)),
            Api::V1 { .. } => request,
            Api::V2 { token, .. } => {
                request.header("Authorization", format!("Token {}", token.expose()))
            }
        }
    }

    /// Whether the server answers and accepts the credentials (for `millstream check`): 1.x
    /// runs `SHOW DATABASES`, 2.x asks for the bucket.
    pub async fn check(&self) -> Result<(), String> {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/').to_string();
        match &self.api {
            Api::V1 { .. } => {
                url.set_path(&format!("{prefix}/query"));
                url.query_pairs_mut().append_pair("q", "SHOW DATABASES");
            }
            Api::V2 { org, bucket, .. } => {
                url.set_path(&format!("{prefix}/api/v2/buckets"));
                url.query_pairs_mut()
                    .append_pair("org", org)
                    .append_pair("name", bucket);
            }
        }
        let response = self
            .authorize(self.client.get(url))
            .send()
            .await
            .map_err(|e| network_error(e).message().to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("InfluxDB {status}: {}", server_message(&body)))
    }

    /// 1.x: `CREATE DATABASE` (idempotent). A user without the right gets on with writing:
    /// the database may well exist.
    async fn prepare(&mut self) -> Result<(), WriteError> {
        let Api::V1 { database, .. } = &self.api else {
            return Ok(());
        };
        let mut url = self.base.clone();
        url.set_path(&format!("{}/query", self.base.path().trim_end_matches('/')));
        let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\\\""));
        url.query_pairs_mut().append_pair("q", &statement);
        let request = self.authorize(self.client.post(url));
        let response = request.send().await.map_err(network_error)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(WriteError::transient(format!(
                "InfluxDB {status} creating the database"
            )));
        }
        // 1.x answers 200 with the statement's error in the body.
        let body = response.text().await.unwrap_or_default();
        let failed = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["results"][0]["error"].as_str().map(str::to_string));
        if !status.is_success() || failed.is_some() {
            tracing::debug!(%status, error = ?failed, "cannot create the InfluxDB database; writing anyway");
        }
        self.ready = true;
        Ok(())
    }

    /// The batch as line protocol (in `self.body`); returns the points encoded.
    pub fn encode(&mut self, batch: &Batch) -> usize {
        self.body.clear();
        let mut points = 0;
        for s in &batch.samples {
            if line_protocol::sample(&mut self.body, s) {
                points += 1;
            } else {
                self.skipped += 1;
            }
        }
        for w in &batch.windows {
            line_protocol::window(&mut self.body, w);
            points += 1;
        }
        points
    }
}

/// InfluxDB keeps times as i64 nanoseconds: about ±292 years around 1970.
const MAX_ABS_MS: i64 = i64::MAX / 1_000_000;

/// Why a point cannot be written, if it cannot.
fn refuse_point(api: &Api, device: &str, item: &str, ts: i64) -> Option<String> {
    if device.is_empty() || item.is_empty() {
        return Some("an empty tag value (device or item)".into());
    }
    // 1.x refuses any tag value ending in a backslash, escaped or not ("invalid tag format").
    if matches!(api, Api::V1 { .. }) && (device.ends_with('\\') || item.ends_with('\\')) {
        return Some(
            "InfluxDB 1.x cannot hold a tag value (device or item) ending in a backslash".into(),
        );
    }
    (ts.unsigned_abs() > MAX_ABS_MS as u64)
        .then(|| format!("time {ts} ms is outside InfluxDB's range (±{MAX_ABS_MS} ms)"))
}

impl BatchWriter for InfluxWriter {
    fn refuse_sample(&self, s: &crate::sample::Sample) -> Option<String> {
        refuse_point(&self.api, &s.device, &s.item, s.ts)
    }

    fn refuse_window(&self, w: &crate::window::WindowRow) -> Option<String> {
        refuse_point(&self.api, &w.device, &w.item, w.start)
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), WriteError> {
        if !self.ready {
            self.prepare().await?;
        }
        if self.encode(batch) == 0 {
            return Ok(());
        }
        let mut gzip = GzEncoder::new(Vec::with_capacity(self.body.len() / 4), Compression::fast());
        gzip.write_all(self.body.as_bytes())
            .and_then(|()| gzip.flush())
            .map_err(|e| WriteError::transient(format!("cannot compress: {e}")))?;
        let body = gzip
            .finish()
            .map_err(|e| WriteError::transient(format!("cannot compress: {e}")))?;
        let request = self
            .client
            .post(self.write_url.clone())
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Encoding", "gzip")
            .body(body);
        let response = self
            .authorize(request)
            .send()
            .await
            .map_err(network_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::NOT_FOUND
            && matches!(self.api, Api::V1 { .. })
            && text.contains("database not found")
        {
            // Dropped while running, or not yet visible after CREATE DATABASE (seen once under
            // load in CI): create it again and retry, rather than refuse the batch.
            self.ready = false;
            return Err(WriteError::transient(format!(
                "InfluxDB {status}: {}; creating it again",
                server_message(&text)
            )));
        }
        Err(classify(status, retry_after, &text))
    }
}

/// The retry rule for an answer that is not a success.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> WriteError {
    let message = server_message(body);
    let message = format!("InfluxDB {status}: {message}");
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        WriteError::Transient {
            message,
            retry_after,
        }
    } else if status.is_server_error() {
        WriteError::transient(message)
    } else {
        WriteError::Permanent(message)
    }
}

/// The `error` (1.x) or `message` (2.x) of a JSON answer, else the text itself (cut short).
fn server_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("error").or_else(|| v.get("message")))
        .and_then(|v| v.as_str())
        .unwrap_or(body)
        .trim();
    crate::sinks::sql::cut(text, 500).to_string()
}

fn network_error(error: reqwest::Error) -> WriteError {
    // reqwest's message names the URL, which carries no credentials here.
    let mut message = format!("InfluxDB unreachable: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    WriteError::transient(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_retry_rules() {
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            "",
        );
        assert_eq!(
            e,
            WriteError::Transient {
                message: "InfluxDB 429 Too Many Requests: ".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, None, "{\"error\":\"timeout\"}"),
            WriteError::Transient { message, .. } if message.ends_with("timeout")
        ));
        assert_eq!(
            classify(
                StatusCode::BAD_REQUEST,
                None,
                "{\"error\":\"partial write: field type conflict\"}"
            ),
            WriteError::Permanent(
                "InfluxDB 400 Bad Request: partial write: field type conflict".into()
            )
        );
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, None, "{\"message\":\"unauthorized access\"}"),
            WriteError::Permanent(m) if m.contains("unauthorized access")
        ));
    }

    #[test]
    fn write_urls_per_flavour() {
        let v1 = InfluxWriter::new(
            "http://127.0.0.1:8086",
            Api::V1 {
                database: "class 2".into(),
                username: None,
                password: None,
            },
        )
        .unwrap();
        assert_eq!(
            v1.write_url.as_str(),
            "http://127.0.0.1:8086/write?db=class+2&precision=ms"
        );
        let v2 = InfluxWriter::new(
            "https://eu-central-1-1.aws.cloud2.influxdata.com/",
            Api::V2 {
                org: "XJTU".into(),
                bucket: "class2down".into(),
                token: Secret::new("t0ken-for-test"),
            },
        )
        .unwrap();
        assert_eq!(
            v2.write_url.as_str(),
            "https://eu-central-1-1.aws.cloud2.influxdata.com/api/v2/write?org=XJTU&bucket=class2down&precision=ms"
        );
    }
}
