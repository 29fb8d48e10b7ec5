//! `millstream record`: captures raw MQTT traffic to a recording while acting as an NC-Link
//! platform (so devices are probed and the recording carries their models), until Ctrl-C or
//! `--duration`. Everything received before the stop is in the file when the command exits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;

use super::{Failure, deadline, interrupted, parse_broker, parse_duration, runtime};
use crate::config::{BrokerUrl, HumanDuration, PollConfig, SourceConfig};
use crate::metrics::Metrics;
use crate::recording::RecordingWriter;
use crate::source::{self, SourceEvent, SourceOptions};

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Broker URL, e.g. mqtt://127.0.0.1:1883.
    #[arg(long, value_parser = parse_broker)]
    broker: BrokerUrl,
    /// Output file: JSON Lines, zstd-compressed when it ends in .zst.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// MQTT topic filter to record (repeatable). Default: every NC-Link device → platform topic.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// MQTT client id (default: millstream-recorder-<pid>).
    #[arg(long)]
    client_id: Option<String>,
    /// Only listen: do not answer Register or probe devices (when a platform is already running).
    #[arg(long)]
    passive: bool,
    /// Poll every device with NC-Link Query requests this often (needs --poll-item).
    #[arg(long, value_parser = parse_duration, requires = "poll_items")]
    poll_interval: Option<HumanDuration>,
    /// Item id to poll (repeatable), e.g. --poll-item 0103502202.
    #[arg(long = "poll-item", requires = "poll_interval")]
    poll_items: Vec<String>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<HumanDuration>,
}

pub fn run(args: RecordArgs) -> Result<(), Failure> {
    let rt = runtime(None)?;
    rt.block_on(record(args))
}

async fn record(args: RecordArgs) -> Result<(), Failure> {
    let mut writer = RecordingWriter::create(&args.output)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", args.output.display())))?;
    let mut config = SourceConfig::for_url(args.broker.clone());
    config.client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("millstream-recorder-{}", std::process::id()));
    // A recorder that is not running should not make the broker queue traffic for it.
    config.clean_session = true;
    if let Some(interval) = args.poll_interval {
        if args.passive {
            return Err(Failure::Usage(vec![
                "record: --passive and --poll-interval exclude each other".into(),
            ]));
        }
        config.poll = Some(PollConfig {
            interval,
            items: args.poll_items.clone(),
            timeout: None,
            devices: Vec::new(),
        });
    }
    let metrics = Arc::new(Metrics::default());
    let options = SourceOptions {
        raw: true,
        passive: args.passive,
        dead_letter_dir: None,
        subscriptions: (!args.topics.is_empty()).then(|| args.topics.clone()),
        ..SourceOptions::new(config, std::path::Path::new("."))
    };
    let (handle, mut events) =
        source::start(options, metrics.clone()).map_err(|e| Failure::Runtime(e.to_string()))?;
    eprintln!(
        "recording {} to {}; Ctrl-C to stop",
        args.broker,
        args.output.display()
    );
    let began = Instant::now();
    let mut devices = BTreeSet::new();
    let mut samples = 0u64;
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    let mut last_count = 0u64;
    let stop = async {
        tokio::select! {
            _ = interrupted() => {}
            _ = deadline(args.duration) => {}
        }
    };
    tokio::pin!(stop);
    let mut handle = Some(handle);
    let mut write_error = None;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    SourceEvent::Raw(m) => {
                        if let Err(e) = writer.write(m.received_at, &m.topic, &m.payload) {
                            write_error = Some(e);
                            break;
                        }
                    }
                    SourceEvent::Samples(batch) => samples += batch.samples.len() as u64,
                    SourceEvent::DeviceDiscovered { device, .. } => {
                        devices.insert(device.to_string());
                    }
                    _ => {}
                }
            }
            _ = flush.tick() => {
                if let Err(e) = writer.flush() {
                    write_error = Some(e);
                    break;
                }
            }
            _ = progress.tick() => {
                let count = writer.messages();
                eprintln!(
                    "{} messages ({:.0}/s) · {} devices · {} samples · {} dead letters · broker {}",
                    count,
                    (count - last_count) as f64 / 5.0,
                    devices.len(),
                    samples,
                    metrics.source.dead_letters_total(),
                    if metrics.source.connected.load(Ordering::Relaxed) { "connected" } else { "disconnected" },
                );
                last_count = count;
            }
            // Stop the source, then keep draining: the event channel ends after the last
            // message received before the stop.
            _ = &mut stop, if handle.is_some() => {
                if let Some(h) = handle.take() {
                    tokio::spawn(h.shutdown());
                }
            }
        }
    }
    if let Some(h) = handle.take() {
        h.shutdown().await;
    }
    if let Some(e) = write_error {
        return Err(Failure::Runtime(format!(
            "cannot write {}: {e}",
            args.output.display()
        )));
    }
    let count = writer.messages();
    writer
        .finish()
        .map_err(|e| Failure::Runtime(format!("cannot finish {}: {e}", args.output.display())))?;
    eprintln!(
        "recorded {count} messages in {:.1} s to {} · devices: {} · samples decoded: {samples} · dead letters: {}",
        began.elapsed().as_secs_f64(),
        args.output.display(),
        if devices.is_empty() {
            "none".to_string()
        } else {
            devices.into_iter().collect::<Vec<_>>().join(", ")
        },
        metrics.source.dead_letters_total(),
    );
    Ok(())
}
