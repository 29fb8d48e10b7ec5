//! Dataflow tests: windows against the reference with 1, 2 and 4 workers and different input
//! batchings (identical output required), live views against the raw data, late samples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;
use crate::id::Id;
use crate::nclink::status::STATUS_ITEM;
use crate::sample::now_ms;
use crate::window::reference::{Arrival, check, expected};

#[derive(Default)]
pub(crate) struct Collect {
    pub samples: Mutex<Vec<Sample>>,
    pub windows: Mutex<Vec<WindowRow>>,
    pub late: Mutex<u64>,
    pub views: crate::live::views::LiveViews,
}

impl Observer for Collect {
    fn on_samples(&self, samples: &Arc<[Sample]>) {
        self.samples.lock().unwrap().extend_from_slice(samples);
    }
    fn on_windows(&self, windows: &[WindowRow]) {
        self.windows.lock().unwrap().extend_from_slice(windows);
    }
    fn on_late(&self, count: u64) {
        *self.late.lock().unwrap() += count;
    }
    fn on_latest(&self, changes: &[(ItemKey, LatestValue, isize)]) {
        self.views.apply_latest(changes);
    }
    fn on_fleet(&self, changes: &[(MachineState, i64, isize)]) {
        self.views.apply_fleet(changes);
    }
    fn on_samples_per_device(&self, changes: &[(Id, i64, isize)]) {
        self.views.apply_samples(changes);
    }
}

pub(crate) fn options(workers: usize) -> DataflowOptions {
    DataflowOptions {
        workers,
        windows: WindowSpec::new(&[1_000, 10_000, 60_000], &[(60_000, 10_000)]),
        allowed_lateness_ms: 2_000,
        idle_timeout_ms: None,
        input_capacity: 16,
        cluster: None,
        holds: Default::default(),
    }
}

/// Runs `batches` through a dataflow to the end; returns what the observer saw.
pub(crate) fn run(options: DataflowOptions, batches: Vec<Vec<Sample>>) -> Arc<Collect> {
    let collect = Arc::new(Collect::default());
    let (input, dataflow) = start(options, collect.clone()).unwrap();
    for batch in batches {
        input.blocking_send(batch).unwrap();
    }
    input.close();
    dataflow.join().unwrap();
    collect
}

fn to_samples(arrivals: &[Arrival]) -> Vec<Sample> {
    arrivals
        .iter()
        .map(|((d, i), ts, v)| Sample::number(Id::from(d.as_str()), Id::from(i.as_str()), *ts, *v))
        .collect()
}

fn batched(samples: &[Sample], sizes: &[usize]) -> Vec<Vec<Sample>> {
    let mut out = Vec::new();
    let mut rest = samples;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
}

fn sorted(mut rows: Vec<WindowRow>) -> Vec<WindowRow> {
    rows.sort_by(|a, b| {
        (&a.device, &a.item, a.size_ms, a.start).cmp(&(&b.device, &b.item, b.size_ms, b.start))
    });
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn windows_are_right_and_independent_of_workers_and_batching(
        arrivals in crate::window::tests::arrivals(),
        sizes_a in prop::collection::vec(1usize..50, 1..5),
        sizes_b in prop::collection::vec(1usize..400, 1..5),
    ) {
        let samples = to_samples(&arrivals);
        let spec = options(1).windows;
        let (want, want_late) = expected(&spec, 2_000, &arrivals);
        let mut outputs = Vec::new();
        for (workers, sizes) in [(1, vec![samples.len().max(1)]), (2, sizes_a.clone()), (4, sizes_b.clone()), (1, sizes_a)] {
            let collect = run(options(workers), batched(&samples, &sizes));
            prop_assert_eq!(*collect.late.lock().unwrap(), want_late);
            prop_assert_eq!(collect.samples.lock().unwrap().len(), samples.len(), "every sample reaches the raw output");
            let rows = sorted(collect.windows.lock().unwrap().clone());
            prop_assert_eq!(rows.len(), want.len());
            for (got, want) in rows.iter().zip(&want) {
                prop_assert_eq!((&*got.device, &*got.item, got.size_ms, got.start), (want.key.0.as_str(), want.key.1.as_str(), want.size, want.start));
                if let Err(e) = check(got, want) {
                    return Err(TestCaseError::fail(e));
                }
            }
            outputs.push(rows);
        }
        for other in &outputs[1..] {
            prop_assert_eq!(other, &outputs[0], "identical whatever the workers and batching");
        }
    }
}

#[test]
fn live_views_agree_with_the_raw_data() {
    let d: Vec<Id> = ["M1", "M2", "M3"].into_iter().map(Id::from).collect();
    let status: Id = Id::from(STATUS_ITEM);
    let speed: Id = Id::from("0103502202");
    // M1 runs then holds; M2 is free (as a Query word); M3 never reports a status.
    let batches = vec![
        vec![
            Sample::number(d[0].clone(), status.clone(), 1_000, 1.0),
            Sample::text(d[1].clone(), status.clone(), 1_000, "free"),
            Sample::number(d[2].clone(), speed.clone(), 1_000, 5.0),
        ],
        vec![
            Sample::number(d[0].clone(), status.clone(), 3_000, 2.0),
            // Older than M1's latest: must not replace it.
            Sample::number(d[0].clone(), status.clone(), 2_000, 0.0),
            Sample::number(d[2].clone(), speed.clone(), 900, 9.0),
            Sample::number(d[2].clone(), speed.clone(), 1_500, 7.0),
        ],
    ];
    let collect = run(options(2), batches);
    let views = &collect.views;
    let m1 = views.latest("M1").unwrap();
    assert_eq!(m1[&status].ts, 3_000);
    assert_eq!(m1[&status].value(), Some(2.0));
    let m3 = views.latest("M3").unwrap();
    assert_eq!((m3[&speed].ts, m3[&speed].value()), (1_500, Some(7.0)));
    let fleet = views.fleet();
    assert_eq!(fleet[&MachineState::Running], 0);
    assert_eq!(fleet[&MachineState::Holding], 1);
    assert_eq!(fleet[&MachineState::Free], 1);
    assert_eq!(fleet[&MachineState::Unknown], 1);
    let counts: BTreeMap<String, i64> = views
        .samples_per_device()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([("M1".into(), 3), ("M2".into(), 1), ("M3".into(), 3)])
    );
}

#[test]
fn late_samples_are_counted_and_still_reach_the_raw_output() {
    let d: Id = Id::from("M");
    let i: Id = Id::from("x");
    let batches = vec![
        vec![Sample::number(d.clone(), i.clone(), 10_000, 1.0)],
        // Watermark is 8 000: 7 000 is late, 8 500 is not.
        vec![
            Sample::number(d.clone(), i.clone(), 7_000, 2.0),
            Sample::number(d.clone(), i.clone(), 8_500, 3.0),
        ],
    ];
    let collect = run(options(1), batches);
    assert_eq!(*collect.late.lock().unwrap(), 1);
    assert_eq!(collect.samples.lock().unwrap().len(), 3);
    let windows = collect.windows.lock().unwrap();
    let total: u64 = windows
        .iter()
        .filter(|w| w.size_ms == 1_000)
        .map(|w| w.count)
        .sum();
    assert_eq!(total, 2, "the late sample is in no window");
}

#[test]
fn a_quiet_source_still_closes_windows() {
    let mut options = options(1);
    options.windows = WindowSpec::new(&[1_000], &[]);
    options.allowed_lateness_ms = 0;
    options.idle_timeout_ms = Some(200);
    let collect = Arc::new(Collect::default());
    let (input, dataflow) = start(options, collect.clone()).unwrap();
    let d: Id = Id::from("M");
    let i: Id = Id::from("x");
    // Event time far in the past (an old recording): the watermark must advance from there at
    // wall-clock speed, not jump to now.
    input
        .blocking_send(vec![
            Sample::number(d.clone(), i.clone(), 10_500, 1.0),
            Sample::number(d, i, 10_700, 2.0),
        ])
        .unwrap();
    let start = std::time::Instant::now();
    while collect.windows.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no window closed without new data"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let waited = start.elapsed();
    {
        let windows = collect.windows.lock().unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!((windows[0].start, windows[0].count), (10_000, 2));
    }
    // 200 ms idle + 300 ms for the watermark to walk from 10 700 to 11 000.
    assert!(
        waited >= std::time::Duration::from_millis(450),
        "closed after {waited:?}"
    );
    input.close();
    dataflow.join().unwrap();
    assert_eq!(collect.windows.lock().unwrap().len(), 1, "emitted once");
}

/// Issue 19: a machine uploads ten seconds it buffered during a network drop (10 ms samples,
/// 10–20 s old, one second per message, sent 1, 0, 3, 2, …), with the engine's idle advance
/// on; in the second run a machine streams live beside it; in the third the messages come
/// slower than the idle timeout, so the keys go idle between them: every window is whole,
/// nothing is late.
#[test]
fn buffered_seconds_uploaded_out_of_order_are_never_late() {
    for (with_live, gap_ms, idle_ms) in [(false, 20, 2_000), (true, 20, 2_000), (false, 300, 100)] {
        let mut options = options(2);
        options.windows = WindowSpec::new(&[1_000, 10_000], &[]);
        options.allowed_lateness_ms = 2_000;
        options.idle_timeout_ms = Some(idle_ms);
        let collect = Arc::new(Collect::default());
        let (input, dataflow) = start(options, collect.clone()).unwrap();
        let (late, live, item) = (Id::from("LATE"), Id::from("LIVE"), Id::from("0103502202"));
        let t0 = (now_ms() - 20_000).div_euclid(1_000) * 1_000;
        let second = |device: &Id, begin: i64| -> Vec<Sample> {
            (0..100)
                .map(|k| Sample::number(device.clone(), item.clone(), begin + k * 10, k as f64))
                .collect()
        };
        for pair in (0..10).step_by(2) {
            for k in [pair + 1, pair] {
                if with_live {
                    let now = now_ms().div_euclid(10) * 10 - 1_000;
                    input.blocking_send(second(&live, now)).unwrap();
                }
                input.blocking_send(second(&late, t0 + k * 1_000)).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(gap_ms));
            }
        }
        input.close();
        dataflow.join().unwrap();
        let case = format!("live beside: {with_live}, every {gap_ms} ms, idle after {idle_ms} ms");
        assert_eq!(*collect.late.lock().unwrap(), 0, "{case}");
        let windows: Vec<(i64, u64)> = sorted(collect.windows.lock().unwrap().clone())
            .into_iter()
            .filter(|w| w.device == late && w.size_ms == 1_000)
            .map(|w| (w.start, w.count))
            .collect();
        let want: Vec<(i64, u64)> = (0..10).map(|k| (t0 + k * 1_000, 100)).collect();
        assert_eq!(windows, want, "{case}");
    }
}

/// Free loopback addresses for the processes of a test cluster.
fn cluster_addresses(processes: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..processes)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// Runs a cluster of `shares.len()` processes of `workers` workers in this test process, each
/// fed its share of the batches, step by step in lockstep (as a broker hands out live traffic:
/// no process runs far ahead of the others in event time); returns each process's observer.
fn run_cluster(workers: usize, shares: Vec<Vec<Vec<Vec<Sample>>>>) -> Vec<Arc<Collect>> {
    let addresses = cluster_addresses(shares.len());
    let processes = shares.len();
    let step = Arc::new(std::sync::Barrier::new(processes));
    let threads: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(process, batches)| {
            let addresses = addresses.clone();
            let step = step.clone();
            std::thread::spawn(move || {
                let mut options = options(workers);
                options.cluster = Some(crate::cluster::Cluster {
                    shard: crate::cluster::Shard { processes, process },
                    addresses,
                });
                let collect = Arc::new(Collect::default());
                let (input, dataflow) = start(options, collect.clone()).unwrap();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let progress = input.progress();
                for batches in batches {
                    for batch in batches {
                        input.blocking_send(batch).unwrap();
                    }
                    // The step has passed through the whole cluster before the next begins.
                    let marker = runtime.block_on(input.mark()).unwrap();
                    while marker.epoch().is_none_or(|e| progress.processed() < e) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    step.wait();
                }
                input.close();
                dataflow.join().unwrap();
                collect
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Fleet-like traffic: every device sends its items in time order, one message per device and
/// tick; statuses change now and then.
fn fleet_messages(devices: usize, ticks: i64) -> Vec<Vec<Sample>> {
    let mut rng = crate::rng::Rng::new(7);
    let items: Vec<Id> = ["0103502202", "0103502203", "0103505100"]
        .into_iter()
        .map(Id::from)
        .collect();
    let status = Id::from(STATUS_ITEM);
    let mut messages = Vec::new();
    for tick in 0..ticks {
        for d in 0..devices {
            let device = Id::from(format!("CLUSTER_{d:03}").as_str());
            let ts = 1_700_000_000_000 + tick * 250 + d as i64;
            let mut message = Vec::new();
            for item in &items {
                for k in 0..3 {
                    let value = rng.next_f64() * 100.0;
                    message.push(Sample::number(
                        device.clone(),
                        item.clone(),
                        ts + k * 50,
                        value,
                    ));
                }
            }
            if tick % 7 == d as i64 % 7 {
                let state = (rng.next_f64() * 3.0) as i64;
                message.push(Sample::number(
                    device.clone(),
                    status.clone(),
                    ts,
                    state as f64,
                ));
            }
            messages.push(message);
        }
    }
    messages
}

#[test]
fn a_cluster_of_processes_computes_what_one_process_does() {
    let messages = fleet_messages(20, 80);
    let total: usize = messages.iter().map(Vec::len).sum();
    let single = run(options(2), messages.clone());
    let want = sorted(single.windows.lock().unwrap().clone());
    assert!(want.len() > 1_000, "{} windows", want.len());
    for (processes, workers) in [(2, 1), (3, 2)] {
        // The broker hands each message to one process, in turn; a step is one second of
        // the fleet's time (4 ticks of 20 messages), less than the allowed lateness.
        let mut shares = vec![Vec::new(); processes];
        for (step, messages) in messages.chunks(80).enumerate() {
            for share in shares.iter_mut() {
                share.push(Vec::new());
            }
            for (n, message) in messages.iter().enumerate() {
                shares[(step * 80 + n) % processes][step].push(message.clone());
            }
        }
        let outputs = run_cluster(workers, shares);
        let raw: usize = outputs
            .iter()
            .map(|c| c.samples.lock().unwrap().len())
            .sum();
        assert_eq!(raw, total, "each process stores what it ingested, once");
        let late: u64 = outputs.iter().map(|c| *c.late.lock().unwrap()).sum();
        assert_eq!(late, *single.late.lock().unwrap(), "late samples");
        let got = sorted(outputs[0].windows.lock().unwrap().clone());
        assert_eq!(
            got.len(),
            want.len(),
            "{processes} processes × {workers} workers"
        );
        assert_same_windows(&got, &want, &format!("{processes} processes"));
        for other in &outputs[1..] {
            assert!(
                other.windows.lock().unwrap().is_empty(),
                "windows are gathered on process 0"
            );
        }
        let (a, b) = (&single.views, &outputs[0].views);
        assert_eq!(a.fleet(), b.fleet());
        assert_eq!(a.samples_per_device(), b.samples_per_device());
        assert_eq!(a.devices(), b.devices());
        for device in a.devices() {
            assert_eq!(a.latest(&device), b.latest(&device), "{device}");
        }
    }
}

/// Two processes each keep back part of a fleet's traffic (a backlog: messages waiting for a
/// device's model, or a write-ahead log to replay) and release it far apart in time, process 1
/// long after process 0. Holding the cluster's time until then keeps process 1's older samples
/// from being late at their owners: the windows equal one process's. `replay`: the holds are
/// taken before the dataflow starts and the backlog has no receive times (a write-ahead log);
/// otherwise each process holds from its first message's receive time, and messages enter at
/// their receive times (a device's discovery).
fn backlogs_released_apart(replay: bool) {
    let options = || {
        let mut o = options(1);
        o.allowed_lateness_ms = 500;
        o
    };
    // 3 s of traffic received from 1 s ago on: part of it enters at times still to come.
    let from = input::wall_clock_epoch() as i64 - 1_000;
    let messages: Vec<(i64, Vec<Sample>)> = fleet_messages(4, 12)
        .into_iter()
        .map(|m| {
            let shifted: Vec<Sample> = m
                .into_iter()
                .map(|s| Sample {
                    ts: s.ts - 1_700_000_000_000 + from,
                    ..s
                })
                .collect();
            (shifted.iter().map(|s| s.ts).max().unwrap() + 5, shifted)
        })
        .collect();
    let single = run(options(), messages.iter().map(|(_, m)| m.clone()).collect());
    assert_eq!(*single.late.lock().unwrap(), 0);
    let want = sorted(single.windows.lock().unwrap().clone());
    assert!(!want.is_empty());

    let addresses = cluster_addresses(2);
    let started = Arc::new(std::sync::Barrier::new(2));
    let released_first = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|process| {
            let addresses = addresses.clone();
            let (started, released_first) = (started.clone(), released_first.clone());
            let share: Vec<(i64, Vec<Sample>)> =
                messages.iter().skip(process).step_by(2).cloned().collect();
            let mut options = options();
            std::thread::spawn(move || {
                options.cluster = Some(crate::cluster::Cluster {
                    shard: crate::cluster::Shard {
                        processes: 2,
                        process,
                    },
                    addresses,
                });
                let early = replay.then(|| options.holds.hold(0));
                let collect = Arc::new(Collect::default());
                let (input, dataflow) = start(options, collect.clone()).unwrap();
                let hold = early.unwrap_or_else(|| input.holds().hold(share[0].0 as u64));
                let release = |share: Vec<(i64, Vec<Sample>)>| {
                    for (received_at, message) in share {
                        let arrival = input::Arrival {
                            received_at: (!replay).then_some(received_at),
                            holds: vec![hold.clone()],
                        };
                        input.blocking_send_arrived(message, arrival).unwrap();
                    }
                };
                started.wait();
                let mut windows_while_held = None;
                if process == 0 {
                    release(share);
                    drop(hold);
                    // Without process 1's hold, process 0's samples would be absorbed (and
                    // windows closed) by now.
                    std::thread::sleep(std::time::Duration::from_millis(1_000));
                    windows_while_held = Some(collect.windows.lock().unwrap().len());
                    released_first.wait();
                } else {
                    released_first.wait();
                    release(share);
                    drop(hold);
                }
                input.close();
                dataflow.join().unwrap();
                (collect, windows_while_held)
            })
        })
        .collect();
    let outputs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        outputs[0].1,
        Some(0),
        "no window closes while process 1 holds the cluster's time"
    );
    let late: u64 = outputs.iter().map(|(c, _)| *c.late.lock().unwrap()).sum();
    assert_eq!(late, 0, "late samples");
    let got = sorted(outputs[0].0.windows.lock().unwrap().clone());
    assert_eq!(got.len(), want.len());
    assert_same_windows(&got, &want, "backlogs");
}

/// Windows equal a single process's: a key's samples arrive in another order than in one
/// process, so sums (mean, stddev) may differ in the last bits; everything else is equal.
fn assert_same_windows(got: &[WindowRow], want: &[WindowRow], what: &str) {
    for (g, w) in got.iter().zip(want) {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0);
        let exact = |r: &WindowRow| WindowRow {
            mean: 0.0,
            stddev: r.stddev.map(|_| 0.0),
            ..r.clone()
        };
        assert_eq!(exact(g), exact(w), "{what}");
        assert!(close(g.mean, w.mean), "{g:?}\n{w:?}");
        assert!(
            close(g.stddev.unwrap_or(0.0), w.stddev.unwrap_or(0.0)),
            "{g:?}\n{w:?}"
        );
    }
}

#[test]
fn a_backlog_released_late_by_another_process_is_not_late() {
    backlogs_released_apart(false);
}

#[test]
fn write_ahead_log_replays_of_several_processes_are_absorbed_together() {
    backlogs_released_apart(true);
}
