//! The MySQL sink over TLS: a private MariaDB (`mariadbd` from Debian's package, started for
//! this test) that refuses connections without TLS, a CA made with `openssl` for this test, and
//! the sink's URL options `ssl-mode=verify_identity&ssl-ca=…`.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use millstream::config::SinkConfig;
use millstream::id::Id;
use millstream::sample::Sample;
use millstream::sinks::{SinkMessage, Sinks};
use sqlx::{ConnectOptions, Row};

use crate::support::{free_port, wait_until};
use crate::tls::make_certificates;

/// A private MariaDB, stopped when dropped.
struct PrivateMariaDb(Child);

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mariadb(dir: &Path, port: u16) -> PrivateMariaDb {
    let data = dir.join("data");
    let out = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ])
        .arg(format!("--datadir={}", data.display()))
        .args(["--skip-test-db"])
        .output()
        .expect("mariadb-install-db (Debian's mariadb-server package; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dir.display();
    let child = Command::new("mariadbd")
        .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={d}/mysqld.sock"))
        .arg(format!("--pid-file={d}/mysqld.pid"))
        .arg(format!("--ssl-ca={d}/ca.pem"))
        .arg(format!("--ssl-cert={d}/server.pem"))
        .arg(format!("--ssl-key={d}/server.key"))
        .args([
            "--require-secure-transport=ON",
            "--innodb-buffer-pool-size=16M",
            "--skip-log-bin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd");
    let server = PrivateMariaDb(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the private MariaDB did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mariadbd, mariadb-install-db and openssl (scripts/test)"]
async fn mysql_sink_writes_over_tls_and_a_plain_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let _server = start_mariadb(dir.path(), port);
    let ca = dir.path().join("ca.pem");
    let secure = format!(
        "mysql://root@127.0.0.1:{port}/tls_db?ssl-mode=verify_identity&ssl-ca={}",
        ca.display()
    );
    let plain = format!("mysql://root@127.0.0.1:{port}/tls_db?ssl-mode=disabled");
    let tls = SinkConfig::mysql("tls", &secure)
        .unwrap()
        .with_batching(None, Some("50ms".parse().unwrap()));
    let refused = SinkConfig::mysql("plain", &plain)
        .unwrap()
        .with_batching(None, Some("50ms".parse().unwrap()));
    let sinks = Sinks::start(&[tls, refused], dir.path()).await.unwrap();
    let d: Id = Id::from("D");
    let batch: Vec<Sample> = (0..100)
        .map(|ts| Sample::number(d.clone(), d.clone(), 1_700_000_000_000 + ts, ts as f64))
        .collect();
    for handle in &sinks.handles {
        handle.send(SinkMessage::Samples(batch.clone().into()));
    }
    let monitors: Vec<_> = sinks.handles.iter().map(|h| h.monitor()).collect();
    wait_until(Duration::from_secs(20), "both sinks tried", || {
        monitors[0].status().written == 100 && monitors[1].status().failed == 100
    })
    .await;
    sinks.finish().await;
    let error = monitors[1].status().last_error.unwrap();
    assert!(
        error.contains("1045") || error.contains("secure"),
        "{error}"
    );

    // The rows are there, read back over TLS, and the session was encrypted.
    let options: sqlx::mysql::MySqlConnectOptions = secure.parse().unwrap();
    let mut conn = options.connect().await.unwrap();
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM samples")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 100);
    let cipher: String = sqlx::query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(1);
    assert!(!cipher.is_empty(), "TLS in use");
}
