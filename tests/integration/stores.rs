//! Helpers for the stores the sinks write to: the machine's MariaDB, the two influxd instances
//! `scripts/test` starts (edge: open, on 8086; cloud: authentication on, on 8087), and a TCP
//! proxy that can cut a store off from the engine and bring it back.
//!
//! Each test writes to its own database (`ms_<tag>_<pid>_<n>`), so tests run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::mysql::MySqlPool;

/// The machine's MariaDB/MySQL server (no database in the URL).
pub fn mysql_server() -> String {
    std::env::var("MILLSTREAM_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The open "edge" InfluxDB 1.x.
pub fn influx_edge() -> String {
    std::env::var("MILLSTREAM_TEST_INFLUX_EDGE").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

/// The "cloud" InfluxDB 1.x with authentication on: URL, user, password (test fixtures, made
/// by `scripts/influxd-start`).
pub fn influx_cloud() -> (String, String, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    (
        var("MILLSTREAM_TEST_INFLUX_CLOUD", "http://127.0.0.1:8087"),
        var("MILLSTREAM_TEST_INFLUX_CLOUD_USER", "millstream"),
        var("MILLSTREAM_TEST_INFLUX_CLOUD_PASSWORD", "millstream-test"),
    )
}

/// Fails the test (never skips it) when nothing listens at `url`'s host and port.
pub fn require(url: &str, what: &str) {
    let parsed = url::Url::parse(url).expect("a URL");
    let addr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap()
    );
    if std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3)).is_err()
    {
        panic!("no {what} at {addr}: scripts/test starts it");
    }
}

/// A database name for this test alone.
pub fn database(tag: &str) -> String {
    crate::support::unique(&format!("ms_{tag}")).replace('-', "_")
}

/// A pool on `database` of the test server, creating the database.
pub async fn mysql(database: &str) -> MySqlPool {
    let server = mysql_server();
    require(&server, "MySQL/MariaDB server");
    let admin = MySqlPool::connect(&server).await.expect("connect to MySQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS `{database}`"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    MySqlPool::connect(&format!("{server}/{database}"))
        .await
        .unwrap()
}

/// Rows of `devices` in the `samples` table of a test database.
pub async fn mysql_sample_count(database: &str, devices: &[String]) -> u64 {
    use sqlx::Row;
    let pool = mysql(database).await;
    let count: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM samples WHERE device IN ({})",
        crate::support::sql_list(devices)
    )))
    .fetch_one(&pool)
    .await
    .map(|r| r.get(0))
    .unwrap_or(0);
    pool.close().await;
    count as u64
}

/// Drops a test database (best effort).
pub async fn drop_mysql(database: &str) {
    if let Ok(admin) = MySqlPool::connect(&mysql_server()).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{database}`"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// Runs an InfluxQL statement; rows of every series as JSON objects (column → value), times in
/// ms. Panics on an HTTP or statement error.
pub async fn influx_query(
    base: &str,
    auth: Option<(&str, &str)>,
    database: &str,
    statement: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    millstream::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut url = url::Url::parse(&format!("{base}/query")).unwrap();
    url.query_pairs_mut()
        .append_pair("db", database)
        .append_pair("q", statement)
        .append_pair("epoch", "ms");
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("InfluxDB answers");
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(status.is_success(), "{statement}: {status} {body}");
    let mut rows = Vec::new();
    for result in body["results"].as_array().unwrap() {
        assert!(result.get("error").is_none(), "{statement}: {result}");
        // A result cut short by a server limit says so; a count from it would mislead.
        assert!(
            result.get("partial").is_none(),
            "{statement}: partial result"
        );
        for series in result["series"].as_array().into_iter().flatten() {
            let columns: Vec<&str> = series["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for values in series["values"].as_array().unwrap() {
                let mut row = serde_json::Map::new();
                for (column, value) in columns.iter().zip(values.as_array().unwrap()) {
                    row.insert(column.to_string(), value.clone());
                }
                if let Some(tags) = series.get("tags").and_then(|t| t.as_object()) {
                    for (k, v) in tags {
                        row.insert(k.clone(), v.clone());
                    }
                }
                rows.push(row);
            }
        }
    }
    rows
}

/// A loopback TCP proxy to a store that a test can cut (every connection dropped, new ones
/// refused) and restore: an outage as the engine sees it, without stopping a shared server.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let target = target.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (o, c) = (open.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            open,
            connections,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
