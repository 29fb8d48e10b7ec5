//! The `millstream` command line (DESIGN.md §3): flags parsed by clap, validated into options,
//! then handed to the command. Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.

#[cfg(feature = "analyze")]
mod analyze;
mod check;
mod demo;
mod lake;
mod record;
mod replay;
mod run;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{BrokerUrl, HumanDuration};

/// millstream: stream processing for machine-tool telemetry (NC-Link over MQTT).
#[derive(Debug, Parser)]
#[command(name = "millstream", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on one machine, nothing to install: embedded broker, simulated machines,
    /// SQLite and Parquet under ./millstream-data/, the HTTP API.
    Demo(demo::DemoArgs),
    /// Run a pipeline file against real services.
    Run(run::RunArgs),
    /// Simulate NC-Link machines STRESS_TEST_%05d on an MQTT broker.
    Sim(sim::SimArgs),
    /// Record raw MQTT traffic (with receive times) to a JSON Lines file, .zst to compress.
    Record(record::RecordArgs),
    /// Validate a pipeline file and try its broker and sink connections.
    Check(check::CheckArgs),
    /// Push a recording (or `lake:DIR`) through a pipeline's dataflow and sinks.
    Replay(replay::ReplayArgs),
    /// Historical statistics over a Parquet lake (polars).
    #[cfg(feature = "analyze")]
    Analyze(analyze::AnalyzeArgs),
    /// Parquet lake housekeeping (`lake compact DIR`).
    Lake(lake::LakeArgs),
}

/// A failure that decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration (exit 2). One line per problem.
    Usage(Vec<String>),
    /// Something went wrong while running (exit 1).
    Runtime(String),
    /// The computation cannot go on (a cluster process was lost): exit 3 at once, without the
    /// orderly stop (the write-ahead log and the broker's sessions bring back what was not
    /// stored).
    Lost(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Runtime(_) => ExitCode::from(1),
            Failure::Lost(_) => ExitCode::from(3),
        }
    }

    pub fn report(&self) {
        match self {
            Failure::Usage(lines) => lines.iter().for_each(|l| eprintln!("{l}")),
            Failure::Runtime(message) | Failure::Lost(message) => eprintln!("error: {message}"),
        }
    }
}

/// The engine, its dataflow and the lake fail while running (exit 1), with their message.
macro_rules! runtime_failure {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Failure {
                Failure::Runtime(e.to_string())
            }
        }
    )*};
}

runtime_failure!(
    crate::engine::StartError,
    crate::dataflow::DataflowError,
    crate::lake::error::LakeError
);

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Record(args) => record::run(args),
        Command::Check(args) => check::run(args),
        Command::Replay(args) => replay::run(args),
        #[cfg(feature = "analyze")]
        Command::Analyze(args) => analyze::run(args),
        Command::Lake(args) => lake::run(args),
    }
}

/// A tokio runtime with `threads` workers (all cores when `None`).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, Failure> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))
}

fn parse_broker(text: &str) -> Result<BrokerUrl, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    text.parse()
}

/// A time given as RFC 3339 or ms since the epoch.
fn parse_time_arg(text: &str) -> Result<i64, String> {
    crate::time::parse_time(text).map_err(|e| {
        format!(
            "time `{text}`: {e}; expected RFC 3339 (2026-11-27T08:00:00Z) or ms since the epoch"
        )
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Resolves after `duration`, or never.
async fn deadline(duration: Option<HumanDuration>) {
    match duration {
        Some(d) => tokio::time::sleep(d.get()).await,
        None => std::future::pending().await,
    }
}
