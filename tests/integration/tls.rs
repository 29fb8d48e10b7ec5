//! `mqtts://` with a private CA and user/password: a private Mosquitto with a TLS listener
//! (certificates made with `openssl` for this test) and a password file. The source connects
//! with `source.tls.ca` and credentials from the URL; a wrong password or an unknown CA keeps it
//! out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use millstream::config::{BrokerUrl, TlsConfig};
use millstream::source::SourceEvent;

use crate::support::{PrivateBroker, start_source, unique, wait_until};

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test installs openssl and mosquitto)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=millstream test CA",
        ]));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req"])
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the mosquitto and openssl binaries (scripts/test)"]
async fn source_connects_over_tls_with_a_private_ca_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    run(Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(dir.path().join("passwords"))
        .args(["millstream", "s3cret pass"]));
    let d = dir.path().display();
    let broker = PrivateBroker::with_config(
        dir.path(),
        false,
        false,
        &format!(
            "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\npassword_file {d}/passwords"
        ),
    );
    let url: BrokerUrl = format!("mqtts://millstream:s3cret%20pass@127.0.0.1:{}", broker.port)
        .parse()
        .unwrap();
    let ca = Some(TlsConfig {
        ca: Some(dir.path().join("ca.pem")),
        client_cert: None,
        client_key: None,
    });
    let state = tempfile::tempdir().unwrap();
    let (handle, mut events, _metrics) =
        start_source(url.clone(), state.path(), |o| o.config.tls = ca.clone());
    wait_until(Duration::from_secs(10), "TLS connection", || {
        handle.is_connected()
    })
    .await;

    // A message published over TLS arrives decoded.
    let device = unique("TLS");
    run(Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "--cafile",
        ])
        .arg(dir.path().join("ca.pem"))
        .args(["-u", "millstream", "-P", "s3cret pass", "-q", "1", "-t"])
        .arg(format!("Query/Response/{device}"))
        .args([
            "-m",
            r#"{"values":[{"id":"010307","code":"OK","values":[42]}]}"#,
        ]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(SourceEvent::Samples(batch))) if *batch.device == *device => {
                assert_eq!(batch.samples[0].value, Some(42.0));
                break;
            }
            Ok(Some(_)) => {}
            _ => panic!("no sample over TLS"),
        }
    }
    handle.shutdown().await;

    // Wrong password: refused, and the source keeps retrying rather than giving up.
    let mut wrong = url.clone();
    wrong.password = Some(millstream::config::Secret::new("nope"));
    let (handle, _events, metrics) =
        start_source(wrong, state.path(), |o| o.config.tls = ca.clone());
    wait_until(Duration::from_secs(10), "refused attempts", || {
        metrics
            .source
            .connection_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    })
    .await;
    assert!(!handle.is_connected());
    handle.shutdown().await;

    // The system's CAs do not know this broker's certificate.
    let (handle, _events, metrics) = start_source(url, state.path(), |_| {});
    wait_until(Duration::from_secs(10), "certificate refused", || {
        metrics
            .source
            .connection_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    assert!(!handle.is_connected());
    handle.shutdown().await;
}
