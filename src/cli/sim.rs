//! `millstream sim`: runs a simulated fleet until Ctrl-C (or `--duration`), printing the rate.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use rumqttc::QoS;

use super::{Failure, deadline, interrupted, parse_broker, parse_duration, runtime};
use crate::config::{BrokerUrl, HumanDuration};
use crate::sim::{SimOptions, SimStats, device_id, start};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Broker URL, e.g. mqtt://127.0.0.1:1883.
    #[arg(long, value_parser = parse_broker)]
    broker: BrokerUrl,
    /// Number of machines.
    #[arg(short = 'n', long = "count", default_value_t = 1)]
    count: u64,
    /// Number of the first machine (machines are STRESS_TEST_<b> … STRESS_TEST_<b+n-1>).
    #[arg(short = 'b', long = "base", default_value_t = 0)]
    base: u64,
    /// Seed: the same seed gives the same machines.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sample interval of every channel (default: the model's, 2s and 100ms).
    #[arg(long, value_parser = parse_duration)]
    sample_interval: Option<HumanDuration>,
    /// Upload interval of every channel (default: the model's, 2s and 1s).
    #[arg(long, value_parser = parse_duration)]
    upload_interval: Option<HumanDuration>,
    /// QoS of Sample messages (0 or 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<HumanDuration>,
    /// Runtime threads (1 runs everything on one core's worth of threads).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: SimArgs) -> Result<(), Failure> {
    if args.count == 0 {
        return Err(Failure::Usage(vec!["sim: -n must be at least 1".into()]));
    }
    let to_ms = |d: Option<HumanDuration>, flag: &str| -> Result<Option<i64>, Failure> {
        match d {
            Some(d) if d.as_millis() == 0 => Err(Failure::Usage(vec![format!(
                "sim: {flag} must be more than 0"
            )])),
            Some(d) => Ok(Some(d.as_millis() as i64)),
            None => Ok(None),
        }
    };
    let options = SimOptions {
        broker: args.broker.clone(),
        count: args.count,
        base: args.base,
        seed: args.seed,
        sample_interval_ms: to_ms(args.sample_interval, "--sample-interval")?,
        upload_interval_ms: to_ms(args.upload_interval, "--upload-interval")?,
        qos: if args.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
    };
    let rt = runtime(args.threads)?;
    rt.block_on(async move {
        let handle = start(options, None).map_err(Failure::Runtime)?;
        eprintln!(
            "simulating {} machine(s) {} … {} on {} (seed {}); Ctrl-C to stop",
            args.count,
            device_id(args.base),
            device_id(args.base + args.count - 1),
            args.broker,
            args.seed
        );
        let stats = handle.stats.clone();
        let began = Instant::now();
        let mut report = tokio::time::interval(Duration::from_secs(5));
        report.tick().await;
        let mut last = (Instant::now(), 0u64, 0u64);
        let stop = async {
            tokio::select! {
                _ = interrupted() => {}
                _ = deadline(args.duration) => {}
            }
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = report.tick() => {
                    let now = (Instant::now(), stats.samples.load(Ordering::Relaxed), stats.messages.load(Ordering::Relaxed));
                    let secs = now.0.duration_since(last.0).as_secs_f64();
                    eprintln!(
                        "{} connected · {:.0} samples/s · {:.0} messages/s · {} queries, {} probes answered",
                        stats.connected.load(Ordering::Relaxed),
                        (now.1 - last.1) as f64 / secs,
                        (now.2 - last.2) as f64 / secs,
                        stats.queries.load(Ordering::Relaxed),
                        stats.probes.load(Ordering::Relaxed),
                    );
                    last = now;
                }
            }
        }
        handle.shutdown().await;
        summary(&stats, began.elapsed());
        Ok(())
    })
}

fn summary(stats: &SimStats, elapsed: Duration) {
    let samples = stats.samples.load(Ordering::Relaxed);
    eprintln!(
        "published {} messages, {} samples in {:.1} s ({:.0} samples/s); {} publish errors, {} connection errors",
        stats.messages.load(Ordering::Relaxed),
        samples,
        elapsed.as_secs_f64(),
        samples as f64 / elapsed.as_secs_f64().max(1e-9),
        stats.publish_errors.load(Ordering::Relaxed),
        stats.connection_errors.load(Ordering::Relaxed),
    );
}
