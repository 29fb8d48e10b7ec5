//! A simulated CNC machining centre whose every signal is a pure function of
//! (seed, machine, time since start).
//!
//! The machine alternates between *free* phases (loading the next part) and *cycles*: a part
//! program of rapid moves, cutting moves and tool changes, with the odd feed hold and alarm
//! (status *holding*). Axis positions follow the toolpath with trapezoidal speed profiles; the
//! actual position lags the command by a servo following error; motor currents follow
//! speed, acceleration and cutting load (which grows with tool wear); every measured signal has
//! noise. The timeline is generated lazily from a seeded generator and evaluated at any time,
//! so Sample channels and Query answers agree exactly at the same instant, and two runs with
//! the same seed produce the same values at the same offsets from their start.

use std::collections::VecDeque;
use std::f64::consts::TAU;
use std::sync::Arc;

use crate::nclink::status::MachineState;
use crate::rng::{Rng, mix, noise};

/// Axes in the model's order: X, Y, Z (mm), C (degrees).
pub const AXES: usize = 4;
/// Servo following error: the actual position trails the command by this long.
const FOLLOWING_LAG_MS: i64 = 6;
/// Phases kept behind the newest evaluated time, for channels that report a little later.
const RETAIN_MS: i64 = 120_000;
const RAPID_MM_PER_MIN: f64 = 6_000.0;
const RAPID_DEG_PER_MIN: f64 = 3_600.0;
const HOME: [f64; AXES] = [0.0, 0.0, 100.0, 0.0];

/// What a segment of a program does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    Rapid,
    Cut,
    /// Tool change or dwell: no motion, status running.
    Dwell,
    /// Feed hold: no motion, status holding.
    Hold,
}

/// An active alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub code: u32,
    pub text: &'static str,
}

const ALARMS: [Alarm; 4] = [
    Alarm {
        code: 1001,
        text: "主轴负载过大 spindle overload",
    },
    Alarm {
        code: 2003,
        text: "X轴跟随误差过大 X following error",
    },
    Alarm {
        code: 3010,
        text: "冷却液液位低 coolant level low",
    },
    Alarm {
        code: 4002,
        text: "刀具寿命到期 tool life expired",
    },
];

#[derive(Debug, Clone)]
struct Segment {
    start: i64,
    end: i64,
    line: u32,
    motion: Motion,
    from: [f64; AXES],
    to: [f64; AXES],
    tool: u32,
    /// Cutting force factor (0 when not cutting).
    load: f64,
    alarm: Option<Alarm>,
}

#[derive(Debug, Clone)]
struct Program {
    name: &'static str,
    number: u32,
    subprogram: &'static str,
}

#[derive(Debug, Clone)]
struct Phase {
    start: i64,
    end: i64,
    /// Parts finished before this phase.
    parts_before: u64,
    program: Option<Arc<Program>>,
    feed_override: f64,
    spindle_override: f64,
    /// Empty for a free phase.
    segments: Vec<Segment>,
}

/// The machine's state at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Milliseconds since the simulation started.
    pub t: i64,
    pub state: MachineState,
    pub program: &'static str,
    pub program_number: u32,
    pub subprogram: &'static str,
    pub line: u32,
    pub tool: u32,
    pub part_count: u64,
    pub feed_override: f64,
    pub spindle_override: f64,
    pub alarm: Option<Alarm>,
    /// Commanded position per axis.
    pub cmd_pos: [f64; AXES],
    /// Commanded speed per axis (mm/min, C in deg/min).
    pub cmd_speed: [f64; AXES],
    /// Actual (measured) position per axis.
    pub act_pos: [f64; AXES],
    /// Actual (measured) speed per axis.
    pub act_speed: [f64; AXES],
    /// Motor current per axis (A).
    pub current: [f64; AXES],
    /// Path feed rate (mm/min).
    pub feed: f64,
}

/// One simulated machine.
#[derive(Debug)]
pub struct Machine {
    key: u64,
    rng: Rng,
    phases: VecDeque<Phase>,
    horizon: i64,
    parts: u64,
    /// Tool wear factor, grows per part, reset when tools are replaced.
    wear: f64,
    hint: usize,
}

impl Machine {
    /// Machine number `index` of a simulation seeded with `seed`.
    pub fn new(seed: u64, index: u64) -> Machine {
        let key = mix(seed ^ mix(index.wrapping_add(0x5EED)));
        let mut rng = Rng::new(key);
        let parts = rng.int(0, 500) as u64;
        let mut m = Machine {
            key,
            rng,
            phases: VecDeque::new(),
            horizon: 0,
            parts,
            wear: 0.0,
            hint: 0,
        };
        // Machines start at different points of their routine.
        let first = m.rng.int(500, 8_000);
        m.push_free(first);
        m
    }

    /// The state at `t` ms after the start (times before the retained history are clamped).
    pub fn at(&mut self, t: i64) -> Snapshot {
        while self.horizon <= t + FOLLOWING_LAG_MS {
            self.generate();
        }
        self.prune(t);
        let cmd = self.kinematics(t);
        let lagged = self.kinematics(t - FOLLOWING_LAG_MS);
        let index = self.find(t);
        let phase = &self.phases[index];
        let segment = phase
            .segments
            .iter()
            .find(|s| s.start <= t && t < s.end)
            .or(phase.segments.last());
        let state = match segment.map(|s| s.motion) {
            _ if phase.segments.is_empty() || t >= phase.end => MachineState::Free,
            Some(Motion::Hold) => MachineState::Holding,
            _ => MachineState::Running,
        };
        let running = state != MachineState::Free;
        let program = phase.program.as_deref();
        let load = segment.filter(|_| running).map_or(0.0, |s| s.load);
        let key = self.key;
        let mut act_pos = [0.0; AXES];
        let mut act_speed = [0.0; AXES];
        let mut current = [0.0; AXES];
        for axis in 0..AXES {
            let k = key ^ ((axis as u64 + 1) * 0x1000);
            act_pos[axis] = round(lagged.pos[axis] + 0.002 * noise(k, t), 1e3);
            act_speed[axis] = round(lagged.speed[axis] + 2.0 * noise(k ^ 1, t), 10.0);
            let share = if axis == 3 {
                0.2
            } else {
                let path = cmd.speed[..3].iter().map(|v| v * v).sum::<f64>().sqrt();
                if path > 1.0 {
                    0.4 + cmd.speed[axis].abs() / path
                } else {
                    0.4
                }
            };
            let amps = 0.35
                + 1.8e-4 * cmd.speed[axis].abs()
                + 4.0e-6 * cmd.accel[axis].abs()
                + load * (1.0 + self.wear) * share * 2.5
                + if axis == 2 { 0.6 } else { 0.0 } // Z carries the spindle head's weight
                + 0.03 * noise(k ^ 2, t);
            current[axis] = round(amps.max(0.0), 1e3);
        }
        let feed = cmd.speed[..3].iter().map(|v| v * v).sum::<f64>().sqrt();
        Snapshot {
            t,
            state,
            program: program.map_or("", |p| p.name),
            program_number: program.map_or(0, |p| p.number),
            subprogram: program.map_or("", |p| p.subprogram),
            line: segment.filter(|_| running).map_or(0, |s| s.line),
            tool: segment.map_or(1, |s| s.tool),
            part_count: phase.parts_before
                + u64::from(t >= phase.end && !phase.segments.is_empty()),
            feed_override: phase.feed_override,
            spindle_override: phase.spindle_override,
            alarm: segment.filter(|_| running).and_then(|s| s.alarm),
            cmd_pos: cmd.pos.map(|p| round(p, 1e3)),
            cmd_speed: cmd.speed.map(|v| round(v, 10.0)),
            act_pos,
            act_speed,
            current,
            feed: round(
                (feed + 1.5 * noise(key ^ 0xFEED, t)).max(0.0) * f64::from(u8::from(feed > 0.5)),
                10.0,
            ),
        }
    }

    fn find(&mut self, t: i64) -> usize {
        let phases = &self.phases;
        let hint = self.hint.min(phases.len() - 1);
        let i = if phases[hint].start <= t && t < phases[hint].end {
            hint
        } else {
            phases.partition_point(|p| p.end <= t).min(phases.len() - 1)
        };
        self.hint = i;
        i
    }

    fn kinematics(&mut self, t: i64) -> Kinematics {
        let i = self.find(t);
        let phase = &self.phases[i];
        if phase.segments.is_empty() || t < phase.start {
            return Kinematics::rest(HOME);
        }
        let Some(s) = phase.segments.iter().find(|s| s.start <= t && t < s.end) else {
            return Kinematics::rest(phase.segments.last().map_or(HOME, |s| s.to));
        };
        if matches!(s.motion, Motion::Dwell | Motion::Hold) {
            return Kinematics::rest(s.from);
        }
        let duration = (s.end - s.start) as f64;
        let u = (t - s.start) as f64 / duration;
        let ramp = if s.motion == Motion::Rapid {
            0.25
        } else {
            0.08
        };
        let (pos, vel, acc) = trapezoid(u, ramp);
        let mut k = Kinematics::rest(s.from);
        for axis in 0..AXES {
            let d = s.to[axis] - s.from[axis];
            k.pos[axis] = s.from[axis] + d * pos;
            // per ms → per min
            k.speed[axis] = d * vel / duration * 60_000.0;
            k.accel[axis] = d * acc / (duration * duration) * 3.6e9;
        }
        if k.pos[3] >= 360.0 {
            k.pos[3] -= 360.0;
        }
        k
    }

    fn prune(&mut self, t: i64) {
        while self.phases.len() > 2 && self.phases[1].end < t - RETAIN_MS {
            self.phases.pop_front();
            self.hint = self.hint.saturating_sub(1);
        }
    }

    fn push_free(&mut self, duration: i64) {
        let (feed_override, spindle_override) = self
            .phases
            .back()
            .map_or((100.0, 100.0), |p| (p.feed_override, p.spindle_override));
        self.phases.push_back(Phase {
            start: self.horizon,
            end: self.horizon + duration,
            parts_before: self.parts,
            program: None,
            feed_override,
            spindle_override,
            segments: Vec::new(),
        });
        self.horizon += duration;
    }

    /// Appends a cycle and the free time after it.
    fn generate(&mut self) {
        let rng = &mut self.rng;
        let program = Arc::new(match rng.int(0, 3) {
            0 => Program {
                name: "O1001",
                number: 1001,
                subprogram: "",
            },
            1 => Program {
                name: "O2002",
                number: 2002,
                subprogram: "O9002",
            },
            2 => Program {
                name: "O3003",
                number: 3003,
                subprogram: "O9003",
            },
            _ => Program {
                name: "O4004",
                number: 4004,
                subprogram: "",
            },
        });
        let feed_override = *rng.pick(&[80.0, 90.0, 100.0, 100.0, 100.0, 100.0, 110.0, 120.0]);
        let spindle_override = *rng.pick(&[90.0, 100.0, 100.0, 100.0, 110.0]);
        let hardness = rng.range(0.8, 1.2);
        let mut path = Toolpath::new(
            self.horizon,
            rng.range(0.9, 1.1),
            feed_override / 100.0,
            hardness * (1.0 + self.wear),
        );
        match program.number {
            1001 => face_mill(&mut path, rng),
            2002 => pocket(&mut path, rng),
            3003 => drill(&mut path, rng),
            _ => contour(&mut path, rng),
        }
        path.rapid_to(HOME);
        // Feed holds and alarms interrupt cutting moves.
        let mut segments = Vec::with_capacity(path.segments.len() + 2);
        // An alarm strikes at the first cutting move from a random point of the program.
        let mut alarm_from = rng
            .chance(0.03)
            .then(|| rng.int(0, path.segments.len() as i64 - 1) as usize);
        let mut shift = 0;
        for (i, mut s) in path.segments.into_iter().enumerate() {
            s.start += shift;
            s.end += shift;
            let interrupt = if s.motion == Motion::Cut && alarm_from.is_some_and(|a| i >= a) {
                alarm_from = None;
                Some((rng.int(10_000, 25_000), Some(*rng.pick(&ALARMS))))
            } else if s.motion == Motion::Cut && rng.chance(0.015) {
                Some((rng.int(2_000, 8_000), None))
            } else {
                None
            };
            if let Some((duration, alarm)) = interrupt {
                segments.push(Segment {
                    start: s.start,
                    end: s.start + duration,
                    motion: Motion::Hold,
                    to: s.from,
                    load: 0.0,
                    alarm,
                    ..s.clone()
                });
                s.start += duration;
                s.end += duration;
                shift += duration;
            }
            segments.push(s);
        }
        let end = segments.last().map_or(self.horizon, |s| s.end);
        self.phases.push_back(Phase {
            start: self.horizon,
            end,
            parts_before: self.parts,
            program: Some(program),
            feed_override,
            spindle_override,
            segments,
        });
        self.horizon = end;
        self.parts += 1;
        self.wear = if self.parts.is_multiple_of(40) {
            0.0
        } else {
            self.wear + 0.005
        };
        let idle = if self.rng.chance(0.05) {
            self.rng.int(30_000, 90_000)
        } else {
            self.rng.int(3_000, 12_000)
        };
        self.push_free(idle);
    }
}

struct Kinematics {
    pos: [f64; AXES],
    speed: [f64; AXES],
    accel: [f64; AXES],
}

impl Kinematics {
    fn rest(pos: [f64; AXES]) -> Kinematics {
        Kinematics {
            pos,
            speed: [0.0; AXES],
            accel: [0.0; AXES],
        }
    }
}

/// Normalised position, speed and acceleration at `u` ∈ [0, 1) of a move whose speed ramps up
/// over the first `r` and down over the last `r` of its duration.
fn trapezoid(u: f64, r: f64) -> (f64, f64, f64) {
    let peak = 1.0 / (1.0 - r);
    if u < r {
        (peak * u * u / (2.0 * r), peak * u / r, peak / r)
    } else if u <= 1.0 - r {
        (peak * (u - r / 2.0), peak, 0.0)
    } else {
        let v = 1.0 - u;
        (1.0 - peak * v * v / (2.0 * r), peak * v / r, -peak / r)
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

/// Builds a cycle's segments move by move.
struct Toolpath {
    t: i64,
    pos: [f64; AXES],
    line: u32,
    tool: u32,
    /// Cutting feed multiplier (workpiece variation).
    feed_scale: f64,
    feed_override: f64,
    load: f64,
    segments: Vec<Segment>,
}

impl Toolpath {
    fn new(start: i64, feed_scale: f64, feed_override: f64, load: f64) -> Toolpath {
        Toolpath {
            t: start,
            pos: HOME,
            line: 0,
            tool: 1,
            feed_scale,
            feed_override,
            load,
            segments: Vec::new(),
        }
    }

    fn push(&mut self, motion: Motion, to: [f64; AXES], duration: i64, load: f64) {
        self.line += 10;
        let duration = duration.max(40);
        self.segments.push(Segment {
            start: self.t,
            end: self.t + duration,
            line: self.line,
            motion,
            from: self.pos,
            to,
            tool: self.tool,
            load,
            alarm: None,
        });
        self.t += duration;
        self.pos = to;
    }

    fn tool_change(&mut self, tool: u32, rng: &mut Rng) {
        self.rapid_to([self.pos[0], self.pos[1], HOME[2], self.pos[3]]);
        self.tool = tool;
        let pos = self.pos;
        self.push(Motion::Dwell, pos, rng.int(2_500, 4_500), 0.0);
    }

    fn rapid_to(&mut self, to: [f64; AXES]) {
        let linear = dist(&self.pos, &to);
        let rotary = (to[3] - self.pos[3]).abs();
        let ms = (linear / RAPID_MM_PER_MIN).max(rotary / RAPID_DEG_PER_MIN) * 60_000.0;
        if ms > 0.0 {
            self.push(Motion::Rapid, to, ms as i64, 0.0);
        }
    }

    /// A cutting move at `feed` mm/min (before override) with cutting force `force`.
    fn cut_to(&mut self, to: [f64; AXES], feed: f64, force: f64) {
        let feed = feed * self.feed_scale * self.feed_override;
        let ms = dist(&self.pos, &to) / feed * 60_000.0;
        let load = force * self.load;
        self.push(Motion::Cut, to, ms.max(100.0) as i64, load);
    }
}

fn dist(a: &[f64; AXES], b: &[f64; AXES]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Facing: zig-zag passes over the top of the part.
fn face_mill(p: &mut Toolpath, rng: &mut Rng) {
    p.tool_change(1, rng);
    let (w, h) = (rng.range(80.0, 140.0), rng.range(60.0, 100.0));
    let step = rng.range(12.0, 20.0);
    let z = rng.range(-1.5, -0.5);
    p.rapid_to([-5.0, 0.0, 5.0, 0.0]);
    p.cut_to([-5.0, 0.0, z, 0.0], 300.0, 0.2);
    let mut y = 0.0;
    let mut forward = true;
    while y <= h {
        let x = if forward { w + 5.0 } else { -5.0 };
        p.cut_to([x, y, z, 0.0], 900.0, 1.0);
        y += step;
        if y <= h {
            p.cut_to([x, y, z, 0.0], 900.0, 0.6);
        }
        forward = !forward;
    }
}

/// Pocketing: rectangular rings inward, two depths.
fn pocket(p: &mut Toolpath, rng: &mut Rng) {
    p.tool_change(2, rng);
    let (cx, cy) = (rng.range(40.0, 60.0), rng.range(30.0, 50.0));
    let (mut w, mut h) = (rng.range(50.0, 70.0), rng.range(30.0, 50.0));
    for depth in [-3.0, -6.0] {
        p.rapid_to([cx, cy, 2.0, 0.0]);
        p.cut_to([cx, cy, depth, 0.0], 150.0, 0.5);
        let (mut ww, mut hh) = (w, h);
        while ww > 6.0 && hh > 6.0 {
            let corners = [
                [cx - ww / 2.0, cy - hh / 2.0],
                [cx + ww / 2.0, cy - hh / 2.0],
                [cx + ww / 2.0, cy + hh / 2.0],
                [cx - ww / 2.0, cy + hh / 2.0],
                [cx - ww / 2.0, cy - hh / 2.0],
            ];
            for [x, y] in corners {
                p.cut_to([x, y, depth, 0.0], 600.0, 1.3);
            }
            ww -= 12.0;
            hh -= 12.0;
        }
        p.rapid_to([p.pos[0], p.pos[1], 5.0, 0.0]);
        w -= 2.0;
        h -= 2.0;
    }
}

/// Drilling: a grid of holes.
fn drill(p: &mut Toolpath, rng: &mut Rng) {
    p.tool_change(3, rng);
    let cols = rng.int(3, 5);
    let rows = rng.int(2, 4);
    let depth = rng.range(-15.0, -8.0);
    for r in 0..rows {
        for c in 0..cols {
            let (x, y) = (15.0 + c as f64 * 22.0, 15.0 + r as f64 * 20.0);
            p.rapid_to([x, y, 2.0, 0.0]);
            p.cut_to([x, y, depth, 0.0], 120.0, 1.6);
            p.rapid_to([x, y, 2.0, 0.0]);
        }
    }
}

/// Contouring on the rotary table: the C axis turns while X/Y trace a profile.
fn contour(p: &mut Toolpath, rng: &mut Rng) {
    p.tool_change(4, rng);
    let radius = rng.range(25.0, 40.0);
    let (cx, cy) = (60.0, 45.0);
    let z = rng.range(-4.0, -2.0);
    let steps = 24;
    p.rapid_to([cx + radius, cy, 2.0, 0.0]);
    p.cut_to([cx + radius, cy, z, 0.0], 200.0, 0.4);
    for i in 1..=steps {
        let a = TAU * f64::from(i) / f64::from(steps);
        let c = 360.0 * f64::from(i) / f64::from(steps);
        p.cut_to(
            [
                cx + radius * a.cos(),
                cy + radius * a.sin(),
                z,
                c.min(359.999),
            ],
            700.0,
            0.9,
        );
    }
    p.rapid_to([p.pos[0], p.pos[1], 5.0, 0.0]);
    let here = p.pos;
    p.rapid_to([here[0], here[1], here[2], 0.0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_signals() {
        let mut a = Machine::new(7, 3);
        let mut b = Machine::new(7, 3);
        let mut c = Machine::new(8, 3);
        let mut differs = false;
        for t in (0..600_000).step_by(37) {
            let (sa, sb, sc) = (a.at(t), b.at(t), c.at(t));
            assert_eq!(sa, sb);
            differs |= sa != sc;
        }
        assert!(differs, "another seed gives another machine");
    }

    #[test]
    fn looks_like_a_machine_at_work() {
        let mut m = Machine::new(1, 0);
        let mut states = std::collections::HashSet::new();
        let mut programs = std::collections::HashSet::new();
        let mut max_speed: f64 = 0.0;
        let mut max_current: f64 = 0.0;
        let mut min_current = f64::MAX;
        let mut lines = std::collections::HashSet::new();
        let first = m.at(0).part_count;
        let mut last = m.at(0);
        // Two hours of machine time.
        for t in (0..7_200_000).step_by(50) {
            let s = m.at(t);
            states.insert(s.state);
            programs.insert(s.program);
            lines.insert(s.line);
            max_speed = max_speed.max(s.cmd_speed[0].abs());
            max_current = max_current.max(s.current[0]);
            min_current = min_current.min(s.current[0]);
            assert!(
                s.part_count >= last.part_count,
                "part counter never goes back"
            );
            if s.state == MachineState::Free {
                assert_eq!(s.line, 0);
            }
            // Positions are continuous: no jumps beyond rapid speed over 50 ms (plus noise).
            for axis in 0..3 {
                assert!(
                    (s.cmd_pos[axis] - last.cmd_pos[axis]).abs()
                        <= RAPID_MM_PER_MIN / 60_000.0 * 50.0 * 2.0 + 0.01
                );
            }
            last = s;
        }
        assert!(states.contains(&MachineState::Running));
        assert!(states.contains(&MachineState::Free));
        assert!(
            states.contains(&MachineState::Holding),
            "feed holds or alarms happen in two hours"
        );
        assert!(programs.len() >= 4, "{programs:?}");
        assert!(lines.len() > 20);
        assert!(max_speed > 3_000.0, "rapids: {max_speed}");
        assert!(
            max_current > 2.0 * min_current,
            "currents follow load: {min_current}..{max_current}"
        );
        assert!(
            last.part_count >= first + 40,
            "parts made: {}",
            last.part_count - first
        );
    }

    #[test]
    fn actual_position_trails_the_command() {
        let mut m = Machine::new(3, 1);
        let mut checked = 0;
        for t in (0..300_000).step_by(10) {
            let s = m.at(t);
            if s.cmd_speed[0].abs() > 1_000.0 {
                let lag = s.act_pos[0] - s.cmd_pos[0];
                // Moving in +X the actual position is behind (smaller), and vice versa.
                assert!(
                    lag * s.cmd_speed[0].signum() < 0.05,
                    "t={t} lag={lag} speed={}",
                    s.cmd_speed[0]
                );
                checked += 1;
            }
        }
        assert!(checked > 100);
    }
}
