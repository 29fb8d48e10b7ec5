//! A WebHDFS client for the one thing the lake needs: writing a file (HDFS' REST API, as the
//! classroom's upload used it). `CREATE` goes to the namenode without a body and is answered
//! with a `307` naming a datanode; the file goes there in a second `PUT`, answered `201`.
//! Redirects are followed by hand: an HTTP client following the `307` itself would send the
//! datanode an empty file. Failed requests are retried with capped, jittered backoff.

use std::time::Duration;

use reqwest::StatusCode;

use crate::backoff::Backoff;

/// Where files go: `webhdfs://host:port/base` (`swebhdfs://` for HTTPS) and the user.
#[derive(Debug, Clone)]
pub struct WebHdfs {
    http: reqwest::Client,
    /// `http(s)://host:port`
    endpoint: String,
    /// The HDFS directory files are written under, without a trailing `/`.
    base: String,
    user: Option<String>,
    attempts: u32,
    first_delay: Duration,
}

impl WebHdfs {
    /// A client for `url` (`webhdfs://…` or `swebhdfs://…`).
    pub fn new(url: &str, user: Option<String>, attempts: u32) -> Result<WebHdfs, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad WebHDFS URL: {e}"))?;
        let scheme = match parsed.scheme() {
            "webhdfs" => "http",
            "swebhdfs" => "https",
            other => return Err(format!("scheme {other:?} is not webhdfs or swebhdfs")),
        };
        let host = parsed
            .host_str()
            .ok_or("the WebHDFS URL names no namenode")?;
        let port = parsed.port().unwrap_or(9870);
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(WebHdfs {
            http,
            endpoint: format!("{scheme}://{host}:{port}"),
            base: parsed.path().trim_end_matches('/').to_string(),
            user,
            attempts: attempts.max(1),
            first_delay: Duration::from_millis(100),
        })
    }

    /// Shortens the first retry delay (tests).
    pub fn with_first_delay(mut self, delay: Duration) -> WebHdfs {
        self.first_delay = delay;
        self
    }

    /// Writes `body` to `base/relative` (replacing a file there), retrying failures.
    pub async fn create(&self, relative: &str, body: Vec<u8>) -> Result<(), String> {
        let mut backoff = Backoff::new(self.first_delay, Duration::from_secs(30));
        let mut attempt = 1;
        loop {
            match self.create_once(relative, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= self.attempts => {
                    return Err(format!("{relative}: {e} (after {attempt} attempts)"));
                }
                Err(e) => {
                    tracing::debug!(file = relative, attempt, error = %e, "WebHDFS write failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn create_once(&self, relative: &str, body: Vec<u8>) -> Result<(), String> {
        let mut url =
            url::Url::parse(&format!("{}/webhdfs/v1", self.endpoint)).map_err(|e| e.to_string())?;
        {
            let mut segments = url.path_segments_mut().map_err(|_| "bad endpoint")?;
            for part in self
                .base
                .split('/')
                .chain(relative.split('/'))
                .filter(|p| !p.is_empty())
            {
                segments.push(part);
            }
        }
        url.query_pairs_mut()
            .append_pair("op", "CREATE")
            .append_pair("overwrite", "true");
        if let Some(user) = &self.user {
            url.query_pairs_mut().append_pair("user.name", user);
        }
        let answer = self
            .http
            .put(url.clone())
            .send()
            .await
            .map_err(|e| format!("namenode: {e}"))?;
        let location = match answer.status() {
            StatusCode::TEMPORARY_REDIRECT => answer
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string)
                .ok_or("namenode: a 307 without Location")?,
            status => {
                return Err(format!(
                    "namenode answered {status}: {}",
                    reason(answer).await
                ));
            }
        };
        let answer = self
            .http
            .put(&location)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("datanode: {e}"))?;
        match answer.status() {
            StatusCode::CREATED => Ok(()),
            status => Err(format!(
                "datanode answered {status}: {}",
                reason(answer).await
            )),
        }
    }
}

/// The `RemoteException` message of a WebHDFS error, or the start of the body.
async fn reason(answer: reqwest::Response) -> String {
    let text = answer.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["RemoteException"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}
