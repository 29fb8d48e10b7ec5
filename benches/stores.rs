//! The MySQL and InfluxDB sinks against the machine's servers, each next to the ceiling of the
//! plainest client doing the same job in the same run (not criterion: servers are shared,
//! long-running state; one timed pass each).
//!
//! - MySQL: the sink (batches of 20,000 rows, 1,000-row idempotent INSERTs, one transaction
//!   per batch) vs a loop of plain 1,000-row INSERTs from one connection, 20 per transaction.
//! - InfluxDB 1.x: the sink (5,000-point batches, gzip) vs posting pre-built 5,000-line bodies
//!   from one HTTP connection.
//!
//! `cargo bench --bench stores` (MariaDB on 127.0.0.1:3306, influxd on 127.0.0.1:8086, as
//! `scripts/test` leaves them; `STORES_ROWS` sets the rows, default 1,000,000).
//! Results: docs/benchmarks.md.

use std::time::Instant;

use millstream::config::{SinkConfig, SinkKind};
use millstream::id::Id;
use millstream::sample::Sample;
use millstream::sinks::{SinkMessage, Sinks};
use sqlx::Connection;

fn samples(n: usize) -> Vec<Sample> {
    let devices: Vec<Id> = (0..100)
        .map(|d| Id::from(format!("STRESS_TEST_{d:05}")))
        .collect();
    let items: Vec<Id> = (0..20).map(|i| Id::from(format!("01035{i:05}"))).collect();
    let mut out = Vec::with_capacity(n);
    let mut tick = 0i64;
    while out.len() < n {
        for device in &devices {
            for item in &items {
                out.push(Sample::number(
                    device.clone(),
                    item.clone(),
                    1_764_086_400_000 + tick,
                    (tick % 1000) as f64 * 0.125,
                ));
            }
        }
        tick += 1;
    }
    out.truncate(n);
    out
}

fn main() {
    millstream::tls::install_crypto_provider();
    let rows: usize = std::env::var("STORES_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = samples(rows);
    rt.block_on(async {
        let mysql = mysql_ceiling(&data).await;
        let sink = through_sink(&data, SinkKind::Mysql).await;
        println!(
            "mysql:  plain batched INSERT {mysql:>10.0} rows/s | sink {sink:>10.0} rows/s ({:.0} %)",
            100.0 * sink / mysql
        );
        let influx = influx_ceiling(&data).await;
        let sink = through_sink(&data, SinkKind::Influx).await;
        println!(
            "influx: pre-built 5,000-line posts {influx:>10.0} points/s | sink {sink:>10.0} points/s ({:.0} %)",
            100.0 * sink / influx
        );
    });
}

const SERVER: &str = "mysql://root@127.0.0.1:3306";
const INFLUX: &str = "http://127.0.0.1:8086";

async fn fresh_mysql(db: &str) -> sqlx::MySqlConnection {
    let mut server = sqlx::MySqlConnection::connect(SERVER).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"
    )))
    .execute(&mut server)
    .await
    .unwrap();
    let mut conn = sqlx::MySqlConnection::connect(&format!("{SERVER}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql(millstream::sinks::mysql::SCHEMA)
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Plain multi-row INSERTs (no idempotence clause), 1,000 rows each, 20 per transaction.
async fn mysql_ceiling(data: &[Sample]) -> f64 {
    let mut conn = fresh_mysql("ms_bench_ceiling").await;
    let row = "(?,?,?,?,?)";
    let start = Instant::now();
    for batch in data.chunks(20_000) {
        let mut tx = conn.begin().await.unwrap();
        for chunk in batch.chunks(1_000) {
            let sql = format!(
                "INSERT INTO samples (device, item, ts, value, text) VALUES {}",
                vec![row; chunk.len()].join(",")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for s in chunk {
                query = query
                    .bind(&*s.device)
                    .bind(&*s.item)
                    .bind(millstream::time::Utc::from_ms(s.ts).sql_fast())
                    .bind(s.value)
                    .bind(None::<String>);
            }
            query.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    data.len() as f64 / start.elapsed().as_secs_f64()
}

/// Pre-built 5,000-line bodies posted one after another over one connection.
async fn influx_ceiling(data: &[Sample]) -> f64 {
    let client = reqwest::Client::new();
    // A new database each run: InfluxDB 1.6 may still be dropping an old one of the same name.
    let db = format!("bench_ceiling_{}", std::process::id());
    client
        .post(format!("{INFLUX}/query?q=CREATE%20DATABASE%20{db}"))
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = data
        .chunks(5_000)
        .map(|chunk| {
            let mut body = String::new();
            for s in chunk {
                millstream::sinks::influx::line_protocol::sample(&mut body, s);
            }
            body
        })
        .collect();
    let url = format!("{INFLUX}/write?db={db}&precision=ms");
    let drop_db = format!("{INFLUX}/query?q=DROP%20DATABASE%20{db}");
    let start = Instant::now();
    for body in bodies {
        let response = client.post(&url).body(body).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    let rate = data.len() as f64 / start.elapsed().as_secs_f64();
    let _ = client.post(drop_db).send().await;
    rate
}

/// The sink as the engine runs it: batches of 16,384 samples sent to its queue (spilling to
/// its spool when full), timed until every row is written.
async fn through_sink(data: &[Sample], kind: SinkKind) -> f64 {
    let state = tempfile::tempdir().unwrap();
    let config = match kind {
        SinkKind::Mysql => {
            drop(fresh_mysql("ms_bench_sink").await);
            SinkConfig::mysql("bench", &format!("{SERVER}/ms_bench_sink")).unwrap()
        }
        _ => SinkConfig::influx(
            "bench",
            INFLUX,
            millstream::config::InfluxApi::V1 {
                database: format!("bench_sink_{}", std::process::id()),
                username: None,
                password: None,
            },
        )
        .unwrap(),
    }
    // The last partial batch is written without waiting the default second.
    .with_batching(None, Some("20ms".parse().unwrap()));
    let sinks = Sinks::start(&[config], state.path()).await.unwrap();
    let monitor = sinks.handles[0].monitor();
    let start = Instant::now();
    for chunk in data.chunks(16_384) {
        sinks.handles[0].send(SinkMessage::Samples(chunk.to_vec().into()));
    }
    while monitor.status().written < data.len() as u64 {
        let status = monitor.status();
        assert_eq!(status.failed, 0, "{status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let rate = data.len() as f64 / start.elapsed().as_secs_f64();
    sinks.finish().await;
    if kind == SinkKind::Influx {
        let db = format!("bench_sink_{}", std::process::id());
        let _ = reqwest::Client::new()
            .post(format!("{INFLUX}/query?q=DROP%20DATABASE%20{db}"))
            .send()
            .await;
    }
    let status = monitor.status();
    assert_eq!(
        (status.written, status.failed),
        (data.len() as u64, 0),
        "{status:?}"
    );
    rate
}
