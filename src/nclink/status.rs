//! Machine status (item `010302`, type `STATUS`): the one table, shared by the simulator and the
//! fleet view, that maps the numeric codes of Sample data and the words of Query answers to the
//! four fleet states of DESIGN.md §6.
//!
//! | Sample code | Query answer | state     | meaning                                    |
//! |-------------|--------------|-----------|--------------------------------------------|
//! | 0           | `free`       | `free`    | idle: no program running (loading, waiting) |
//! | 1           | `running`    | `running` | a program is executing                      |
//! | 2           | `holding`    | `holding` | feed hold or alarm: program stopped mid-way |
//! | other       | other        | `unknown` |                                             |
//!
//! Query words are matched case-insensitively; `idle` and `hold` are accepted as synonyms.

use serde::{Deserialize, Serialize};

/// The item id of the machine status.
pub const STATUS_ITEM: &str = "010302";

/// A machine's state for the fleet view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    Running,
    Free,
    Holding,
    Unknown,
}

impl MachineState {
    /// The numeric code a device puts in Sample data (`Unknown` has none; it is sent as 9).
    pub fn code(self) -> f64 {
        match self {
            MachineState::Free => 0.0,
            MachineState::Running => 1.0,
            MachineState::Holding => 2.0,
            MachineState::Unknown => 9.0,
        }
    }

    /// The word a device puts in a Query answer.
    pub fn word(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::Free => "free",
            MachineState::Holding => "holding",
            MachineState::Unknown => "unknown",
        }
    }

    /// The state of a numeric status sample.
    pub fn from_code(code: f64) -> MachineState {
        if code == 0.0 {
            MachineState::Free
        } else if code == 1.0 {
            MachineState::Running
        } else if code == 2.0 {
            MachineState::Holding
        } else {
            MachineState::Unknown
        }
    }

    /// The state of a text status sample (a Query answer).
    pub fn from_word(word: &str) -> MachineState {
        let word = word.trim();
        if word.eq_ignore_ascii_case("running") {
            MachineState::Running
        } else if word.eq_ignore_ascii_case("free") || word.eq_ignore_ascii_case("idle") {
            MachineState::Free
        } else if word.eq_ignore_ascii_case("holding") || word.eq_ignore_ascii_case("hold") {
            MachineState::Holding
        } else {
            // Some devices send the code as a string.
            word.parse::<f64>()
                .map(MachineState::from_code)
                .unwrap_or(MachineState::Unknown)
        }
    }

    /// The state of a status sample of either form.
    pub fn from_sample(value: Option<f64>, text: Option<&str>) -> MachineState {
        match (value, text) {
            (Some(code), _) => MachineState::from_code(code),
            (None, Some(word)) => MachineState::from_word(word),
            (None, None) => MachineState::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words_agree() {
        for state in [
            MachineState::Running,
            MachineState::Free,
            MachineState::Holding,
        ] {
            assert_eq!(MachineState::from_code(state.code()), state);
            assert_eq!(MachineState::from_word(state.word()), state);
            assert_eq!(MachineState::from_word(&state.word().to_uppercase()), state);
        }
        assert_eq!(MachineState::from_code(7.0), MachineState::Unknown);
        assert_eq!(MachineState::from_word("1"), MachineState::Running);
        assert_eq!(
            MachineState::from_word("maintenance"),
            MachineState::Unknown
        );
        assert_eq!(MachineState::from_sample(None, None), MachineState::Unknown);
    }
}
