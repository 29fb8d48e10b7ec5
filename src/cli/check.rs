//! `millstream check -c FILE`: validates a pipeline file (every problem, one line each, exit 2),
//! then tries the broker and each sink — logging in to MySQL and InfluxDB with the configured
//! credentials — (one line per unreachable or refusing service, exit 1). Secrets never appear
//! in the output.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rumqttc::{AsyncClient, Event, Packet};

use super::{Failure, runtime};
use crate::config::{self, Config};
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
        if let Err(e) = crate::sinks::healthcheck(sink, TIMEOUT).await {
            problems.push(format!("sinks[{i}] ({}): {e}", sink.name()));
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
