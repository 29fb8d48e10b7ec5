//! Which simulated signal each NC-Link item of the model reports, and how it is put on the wire.
//!
//! The item ids are those of the lab's model (`data/nc-link/lab-model.json`): machine status,
//! feed, overrides and part count; per axis (X, Y, Z, C) the commanded and actual position and
//! speed and the motor current; the controller's program, line, tool and alarms. `LIST` and
//! `HASH` variables (registers) hold numbers a `Set/Request` can change. Configs with a fixed
//! `value` in the model answer that value. Anything else is answered `NG`.

use std::collections::HashMap;

use serde_json::Value;

use super::machine::{AXES, Snapshot};
use crate::nclink::encode::WireValue;
use crate::nclink::status::MachineState;

/// Values per register variable.
pub const REGISTER_LEN: usize = 8;

/// A simulated signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Status,
    Feed,
    FeedOverride,
    SpindleOverride,
    PartCount,
    CmdPos(usize),
    CmdSpeed(usize),
    Current(usize),
    ActPos(usize),
    ActSpeed(usize),
    Program,
    ProgramNumber,
    Subprogram,
    Line,
    Tool,
    Warning,
    ProgramText,
    Register,
    Fixed(WireValue),
}

/// Per-axis item ids in the lab model: (command position, command speed, current, actual
/// position, actual speed).
const AXIS_IDS: [[&str; 5]; AXES] = [
    [
        "0103502001",
        "0103502003",
        "0103502101",
        "0103502201",
        "0103502202",
    ],
    [
        "0103512001",
        "0103512003",
        "0103512101",
        "0103512201",
        "0103512202",
    ],
    [
        "0103522001",
        "0103522003",
        "0103522101",
        "0103522201",
        "0103522202",
    ],
    [
        "0103532001",
        "0103532002",
        "0103532103",
        "0103532101",
        "0103532102",
    ],
];

/// The signals of every item of a model tree.
#[derive(Debug, Clone)]
pub struct SignalMap {
    by_id: HashMap<String, Signal>,
}

impl SignalMap {
    pub fn from_model(tree: &Value) -> SignalMap {
        let mut by_id = HashMap::new();
        collect(tree, &mut by_id);
        for (id, signal) in [
            ("010302", Signal::Status),
            ("010303", Signal::Feed),
            ("010305", Signal::FeedOverride),
            ("010306", Signal::SpindleOverride),
            ("010307", Signal::PartCount),
            ("01035409", Signal::Program),
            ("01035410", Signal::Subprogram),
            ("01035411", Signal::Line),
            ("01035412", Signal::Warning),
            ("01035413", Signal::Tool),
            ("01035414", Signal::ProgramNumber),
            ("01035484", Signal::ProgramText),
            (
                "01035415",
                Signal::Fixed(WireValue::Json(
                    r#"{"1001":"O1001","2002":"O2002","3003":"O3003","4004":"O4004"}"#.into(),
                )),
            ),
            ("01035420", Signal::Fixed(WireValue::Json("[]".into()))),
            ("01035406", Signal::Fixed(WireValue::Text(String::new()))),
        ] {
            by_id.insert(id.to_string(), signal);
        }
        for (axis, ids) in AXIS_IDS.iter().enumerate() {
            let signals = [
                Signal::CmdPos(axis),
                Signal::CmdSpeed(axis),
                Signal::Current(axis),
                Signal::ActPos(axis),
                Signal::ActSpeed(axis),
            ];
            for (id, signal) in ids.iter().zip(signals) {
                by_id.insert(id.to_string(), signal);
            }
        }
        SignalMap { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Signal> {
        self.by_id.get(id)
    }
}

/// Registers and fixed configs from the model: any item with `dataType` LIST/HASH is a register;
/// any item with a scalar `value` answers it.
fn collect(node: &Value, out: &mut HashMap<String, Signal>) {
    match node {
        Value::Object(obj) => {
            if let Some(id) = obj.get("id").and_then(Value::as_str) {
                let data_type = obj.get("dataType").and_then(Value::as_str);
                if matches!(data_type, Some("LIST" | "HASH")) {
                    out.insert(id.to_string(), Signal::Register);
                } else if let Some(value) = obj.get("value") {
                    let wire = match value {
                        Value::Number(n) => n.as_f64().map(WireValue::Number),
                        Value::String(s) => Some(WireValue::Text(s.clone())),
                        _ => None,
                    };
                    if let Some(wire) = wire {
                        out.insert(id.to_string(), Signal::Fixed(wire));
                    }
                }
            }
            for v in obj.values() {
                collect(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// How a value is asked for: Sample rows carry the status as a code, Query answers as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Sample,
    Query,
}

/// The value(s) of `signal` in `snapshot`. Registers come from `registers`.
pub fn values(
    signal: &Signal,
    s: &Snapshot,
    form: Form,
    register: Option<&[f64]>,
) -> Vec<WireValue> {
    let n = WireValue::Number;
    vec![match signal {
        Signal::Status => match form {
            Form::Sample => n(s.state.code()),
            Form::Query => WireValue::Text(s.state.word().to_string()),
        },
        Signal::Feed => n(s.feed),
        Signal::FeedOverride => n(s.feed_override),
        Signal::SpindleOverride => n(s.spindle_override),
        Signal::PartCount => n(s.part_count as f64),
        Signal::CmdPos(a) => n(s.cmd_pos[*a]),
        Signal::CmdSpeed(a) => n(s.cmd_speed[*a]),
        Signal::Current(a) => n(s.current[*a]),
        Signal::ActPos(a) => n(s.act_pos[*a]),
        Signal::ActSpeed(a) => n(s.act_speed[*a]),
        Signal::Program => WireValue::Text(s.program.to_string()),
        Signal::ProgramNumber => n(f64::from(s.program_number)),
        Signal::Subprogram => WireValue::Text(s.subprogram.to_string()),
        Signal::Line => n(f64::from(s.line)),
        Signal::Tool => n(f64::from(s.tool)),
        Signal::Warning => WireValue::Json(match s.alarm {
            Some(alarm) => {
                serde_json::json!([{ "code": alarm.code, "text": alarm.text }]).to_string()
            }
            None => "[]".to_string(),
        }),
        Signal::ProgramText => WireValue::Text(if s.state == MachineState::Free {
            String::new()
        } else {
            format!(
                "%{}\nN{} T{} M06\n...\nM30\n",
                s.program_number, s.line, s.tool
            )
        }),
        Signal::Register => return register.unwrap_or(&[]).iter().map(|v| n(*v)).collect(),
        Signal::Fixed(v) => v.clone(),
    }]
}

/// Appends the values of `signals` at times `from, from + interval, …` up to and including
/// `to` (ms since the simulation start) to one row per signal; returns the next tick.
pub fn sample_rows(
    machine: &mut super::machine::Machine,
    signals: &[Signal],
    from: i64,
    to: i64,
    interval: i64,
    rows: &mut [Vec<WireValue>],
) -> i64 {
    let mut t = from;
    while t <= to {
        let snapshot = machine.at(t);
        for (row, signal) in rows.iter_mut().zip(signals) {
            // Registers are not sampled in channels; they answer Query requests.
            row.extend(values(signal, &snapshot, Form::Sample, Some(&[])));
        }
        t += interval;
    }
    t
}

/// Initial register contents, the same for every run.
pub fn initial_register(id: &str) -> Vec<f64> {
    let seed = id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..REGISTER_LEN as u64)
        .map(|i| ((seed + i * 7) % 100) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nclink::model::DeviceModel;

    #[test]
    fn every_lab_item_has_a_signal() {
        let tree: Value =
            serde_json::from_str(include_str!("../../data/nc-link/simulator-model.json")).unwrap();
        let map = SignalMap::from_model(&tree);
        let model = DeviceModel::from_own_tree(tree).unwrap();
        let missing: Vec<&str> = model
            .items
            .iter()
            .map(|i| &*i.id)
            .filter(|id| map.get(id).is_none())
            .collect();
        assert!(missing.is_empty(), "items without a signal: {missing:?}");
        assert_eq!(
            map.get("01035001"),
            Some(&Signal::Fixed(WireValue::Text("X".into())))
        );
        assert_eq!(map.get("01035430"), Some(&Signal::Register));
    }
}
