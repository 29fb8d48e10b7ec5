//! `millstream check -c FILE`: validates a pipeline file (every problem, one line each, exit 2),
//! then tries the broker and each sink — logging in to MySQL and InfluxDB with the configured
//! credentials — (one line per unreachable or refusing service, exit 1). Secrets never appear
//! in the output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rumqttc::{AsyncClient, Event, Packet};

use super::{Failure, runtime};
use crate::config::{self, Config, SinkConfig, SinkKind, redact_secrets};
use crate::source::SourceOptions;
use crate::source::connection::mqtt_options;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Pipeline file (see dataflows/).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Only validate the file; do not try any connection.
    #[arg(long)]
    offline: bool,
}

pub fn run(args: CheckArgs) -> Result<(), Failure> {
    let config = config::load(&args.config)
        .map_err(|errors| Failure::Usage(errors.0.iter().map(|e| e.to_string()).collect()))?;
    let file = args.config.display().to_string();
    if args.offline {
        println!(
            "{file}: valid ({} sink(s)); connections not tried",
            config.sinks.len()
        );
        return Ok(());
    }
    let rt = runtime(None)?;
    let problems = rt.block_on(connections(&config));
    if problems.is_empty() {
        println!(
            "{file}: valid; broker {} reachable; {} sink(s) reachable",
            config.source.url,
            config.sinks.len()
        );
        Ok(())
    } else {
        Err(Failure::Runtime(
            problems
                .iter()
                .map(|p| format!("{file}: {p}"))
                .collect::<Vec<_>>()
                .join("\nerror: "),
        ))
    }
}

async fn connections(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = try_broker(config).await {
        problems.push(format!(
            "source.url: cannot connect to {}: {e}",
            config.source.url
        ));
    }
    for (i, sink) in config.sinks.iter().enumerate() {
        if let Err(e) = try_sink(sink).await {
            problems.push(format!("sinks[{i}] ({}): {e}", sink.name));
        }
    }
    problems
}

async fn try_broker(config: &Config) -> Result<(), String> {
    let mut broker = SourceOptions::new(config.source.clone(), &config.state_dir).broker();
    broker.client_id = format!("{}-check-{}", broker.client_id, std::process::id());
    broker.clean_session = true;
    let (client, mut eventloop) = AsyncClient::new(mqtt_options(&broker)?, 10);
    let outcome = tokio::time::timeout(TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())));
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    outcome
}

async fn try_sink(sink: &SinkConfig) -> Result<(), String> {
    match sink.kind {
        SinkKind::Mysql => {
            let options = crate::sinks::mysql::connect_options(sink)?;
            // Logs in (checks user and password) without needing the database to exist yet:
            // the sink creates it.
            let attempt = async {
                use sqlx::{ConnectOptions, Connection};
                let connection = options.database("").connect().await?;
                connection.close().await
            };
            match tokio::time::timeout(TIMEOUT, attempt).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(redact_secrets(&format!("cannot log in to MySQL: {e}"))),
                Err(_) => Err(format!("MySQL: no answer within {} s", TIMEOUT.as_secs())),
            }
        }
        SinkKind::Influx => {
            let writer = crate::sinks::influx::InfluxWriter::from_config(sink)?;
            match tokio::time::timeout(TIMEOUT, writer.check()).await {
                Ok(result) => result.map_err(|e| redact_secrets(&e)),
                Err(_) => Err(format!(
                    "InfluxDB: no answer within {} s",
                    TIMEOUT.as_secs()
                )),
            }
        }
        SinkKind::Parquet => writable(sink.dir.as_deref().unwrap_or(Path::new("."))),
        SinkKind::Sqlite => {
            let text = sink.url.as_deref().unwrap_or_default();
            let path = text
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let parent = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            writable(parent)
        }
    }
}

/// Whether files can be created in `dir` (or, if it does not exist yet, in its nearest existing
/// ancestor, where millstream would create it). Creates nothing that stays.
fn writable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.is_dir())
        .unwrap_or(Path::new("."));
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let probe = existing.join(format!(".millstream-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
