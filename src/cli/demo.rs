//! `millstream demo`: everything on one machine with nothing installed — an embedded MQTT broker
//! (rumqttd) on a free loopback port, simulated machines, the pipeline of `dataflows/demo.toml`
//! (SQLite and a Parquet lake under `./millstream-data/`), and the HTTP API.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use clap::Args;

use super::run::report_until_interrupted;
use super::{Failure, runtime};
use crate::config::{self, BrokerUrl};
use crate::engine::{Engine, EngineSettings};
use crate::sim::{self, SimOptions, device_id};

/// The demo's pipeline, embedded (the same file as `dataflows/demo.toml`).
const DEMO_PIPELINE: &str = include_str!("../../dataflows/demo.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the API listens (default 127.0.0.1:8080, or the next free port).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Simulated machines.
    #[arg(long, default_value_t = 3)]
    devices: u64,
    /// Simulator seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataflow worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Use this MQTT broker instead of starting one (required when built without the
    /// `embedded-broker` feature).
    #[arg(long)]
    broker: Option<BrokerUrl>,
}

pub fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.devices == 0 {
        return Err(Failure::Usage(vec![
            "demo: --devices must be at least 1".into(),
        ]));
    }
    if let Some(listen) = args.http {
        // The demo's pipeline has no token: it serves loopback only.
        crate::config::check_exposure(listen, None, false)
            .map_err(|e| Failure::Usage(vec![format!("demo --http {listen}: {e}")]))?;
    }
    let url = match args.broker.clone() {
        Some(url) => url,
        None => embedded_broker()?,
    };
    let mut config = config::load_str(DEMO_PIPELINE, "dataflows/demo.toml", |_| None)
        .map_err(|e| Failure::Runtime(format!("the embedded demo pipeline is invalid: {e}")))?;
    config.source.url = url.clone();
    let listen = match args.http {
        Some(addr) => addr,
        None => {
            let port = free_port(Some(8080))
                .ok_or_else(|| Failure::Runtime("no free port from 8080 to 8099".into()))?;
            SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let mut settings = EngineSettings {
        listen: Some(listen),
        ..EngineSettings::default()
    };
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    runtime(None)?.block_on(async move {
        let engine = Engine::start(config, settings).await?;
        let mut options = SimOptions::new(url.clone(), args.devices);
        options.seed = args.seed;
        let sim = sim::start(options, None).map_err(Failure::Runtime)?;
        let base = format!("http://{}", engine.http_addr);
        let first = device_id(0);
        let banner = format!(
            "millstream demo: {devices} simulated machine(s) on {which} at {url}\n\n  \
             open {base}/\n\n  \
             curl {base}/api/v1/devices\n  \
             curl '{base}/api/v1/latest?device={first}'\n  \
             curl '{base}/api/v1/windows?device={first}&item=0103502201&size=10s'\n  \
             curl {base}/api/v1/fleet\n  \
             curl -N {base}/api/v1/events\n\n  \
             data: ./millstream-data/ (SQLite millstream.db, Parquet lake/)\n  \
             Ctrl-C to stop\n",
            devices = args.devices,
            which = if args.broker.is_some() {
                "the broker"
            } else {
                "an embedded broker"
            }
        );
        // Whoever reads stdout may stop reading (`| head`): the demo keeps running and still
        // shuts down cleanly, where `println!` would panic on the closed pipe.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(banner.as_bytes())
            .and_then(|()| stdout.flush());
        drop(stdout);
        report_until_interrupted(&engine).await;
        eprintln!("stopping: machines, then windows and sink writes…");
        sim.shutdown().await;
        engine.shutdown().await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// A free loopback port: `preferred` or one of the 19 after it, or any when `None`.
fn free_port(preferred: Option<u16>) -> Option<u16> {
    match preferred {
        Some(start) => (start..start + 20).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()),
        None => TcpListener::bind(("127.0.0.1", 0))
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

/// Starts the embedded broker on a free loopback port; its URL.
#[cfg(feature = "embedded-broker")]
fn embedded_broker() -> Result<BrokerUrl, Failure> {
    let port = free_port(None)
        .ok_or_else(|| Failure::Runtime("no free loopback port for the broker".into()))?;
    start_broker(port)?;
    Ok(format!("mqtt://127.0.0.1:{port}")
        .parse()
        .expect("valid URL"))
}

#[cfg(not(feature = "embedded-broker"))]
fn embedded_broker() -> Result<BrokerUrl, Failure> {
    Err(Failure::Usage(vec![
        "demo: this millstream is built without the embedded-broker feature; give --broker mqtt://host:port".into(),
    ]))
}

/// Starts rumqttd on 127.0.0.1:`port` in its own thread.
#[cfg(feature = "embedded-broker")]
fn start_broker(port: u16) -> Result<(), Failure> {
    let settings = serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 10_010,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 104_857_600,
            "max_segment_count": 10
        },
        "v4": {
            "1": {
                "name": "v4-1",
                "listen": format!("127.0.0.1:{port}"),
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60_000,
                    "max_payload_size": 16_777_216,
                    "max_inflight_count": 100,
                    "dynamic_filters": true
                }
            }
        }
    });
    let config: rumqttd::Config = serde_json::from_value(settings)
        .map_err(|e| Failure::Runtime(format!("embedded broker settings: {e}")))?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| Failure::Runtime(format!("cannot start the embedded broker: {e}")))?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(Failure::Runtime(format!(
        "the embedded broker did not start on 127.0.0.1:{port}"
    )))
}
