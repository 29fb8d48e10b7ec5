//! The record format of a batch on disk, shared by the sinks' spool and the write-ahead log: a
//! compact little-endian binary form of a batch, with the batch's
//! device and item names written once (a table) and referred to by index. A batch the format
//! cannot hold whole (a name over 65,535 bytes, more than 2³² rows) is refused, never cut: a cut
//! name would be another name, or not UTF-8 at all.
//!
//! ```text
//! record   = kind:u8 names rows | 3:u8 barrier:u64
//! names    = count:u32 (len:u16 utf8)*
//! samples  = count:u32 (device:u32 item:u32 ts:i64 flags:u8 [value:f64] [len:u32 text])*
//! windows  = count:u32 (device:u32 item:u32 size:i64 start:i64 count:u64 stats:9×f64 flags:u8)*
//!            (stats in `crate::window::STATS` order; flags bit 0: stddev present)
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use crate::id::Id;
use crate::sample::Sample;
use crate::window::WindowRow;

const SAMPLES: u8 = 1;
const WINDOWS: u8 = 2;
/// A checkpoint's barrier, in its place among the batches (its id names it in memory).
const BARRIER: u8 = 3;

/// A batch of rows as a record holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    Samples(Arc<[Sample]>),
    Windows(Arc<[WindowRow]>),
}

impl Rows {
    /// Rows in the batch.
    pub fn len(&self) -> u64 {
        match self {
            Rows::Samples(s) => s.len() as u64,
            Rows::Windows(w) => w.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a record holds.
#[derive(Debug)]
pub enum Record {
    Rows(Rows),
    /// A checkpoint barrier's id (the spool's; the log has none).
    Barrier(u64),
}

/// Why a batch cannot be encoded, or a record decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A name longer than a record can hold (it is refused, never cut).
    #[error("a name of {0} bytes is longer than the spool can hold (65535 bytes)")]
    NameTooLong(usize),
    /// More rows, names or text bytes than a 32-bit count holds.
    #[error("{count} {what} are more than the spool can hold")]
    TooMany { count: usize, what: &'static str },
    #[error("record cut short")]
    CutShort,
    #[error("a name that is not UTF-8: {0}")]
    NotUtf8(String),
    #[error("name {0} out of range")]
    NameOutOfRange(u32),
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("barrier record of the wrong size")]
    BadBarrier,
}

/// The record of barrier `id`.
pub fn encode_barrier(id: u64) -> Vec<u8> {
    let mut out = vec![BARRIER];
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// Decodes a record written by [`encode`] or [`encode_barrier`].
pub fn decode_record(record: &[u8]) -> Result<Record, CodecError> {
    if let [BARRIER, id @ ..] = record {
        let id: [u8; 8] = id.try_into().map_err(|_| CodecError::BadBarrier)?;
        return Ok(Record::Barrier(u64::from_le_bytes(id)));
    }
    decode(record).map(Record::Rows)
}

struct Names<'a> {
    index: HashMap<&'a str, u32>,
    list: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn new() -> Self {
        Names {
            index: HashMap::new(),
            list: Vec::new(),
        }
    }

    fn id(&mut self, name: &'a str) -> u32 {
        *self.index.entry(name).or_insert_with(|| {
            self.list.push(name);
            (self.list.len() - 1) as u32
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&len32(self.list.len(), "names")?.to_le_bytes());
        for name in &self.list {
            let len = u16::try_from(name.len()).map_err(|_| CodecError::NameTooLong(name.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        Ok(())
    }
}

fn len32(n: usize, what: &'static str) -> Result<u32, CodecError> {
    u32::try_from(n).map_err(|_| CodecError::TooMany { count: n, what })
}

/// Encodes a batch; an error for a batch the format cannot hold whole.
pub fn encode(rows: &Rows) -> Result<Vec<u8>, CodecError> {
    let mut names = Names::new();
    let mut body = Vec::new();
    let kind = match rows {
        Rows::Samples(samples) => {
            body.extend_from_slice(&len32(samples.len(), "rows")?.to_le_bytes());
            for s in samples.iter() {
                body.extend_from_slice(&names.id(&s.device).to_le_bytes());
                body.extend_from_slice(&names.id(&s.item).to_le_bytes());
                body.extend_from_slice(&s.ts.to_le_bytes());
                let flags = u8::from(s.value.is_some()) | (u8::from(s.text.is_some()) << 1);
                body.push(flags);
                if let Some(v) = s.value {
                    body.extend_from_slice(&v.to_le_bytes());
                }
                if let Some(t) = &s.text {
                    body.extend_from_slice(&len32(t.len(), "text bytes")?.to_le_bytes());
                    body.extend_from_slice(t.as_bytes());
                }
            }
            SAMPLES
        }
        Rows::Windows(windows) => {
            body.extend_from_slice(&len32(windows.len(), "rows")?.to_le_bytes());
            for w in windows.iter() {
                body.extend_from_slice(&names.id(&w.device).to_le_bytes());
                body.extend_from_slice(&names.id(&w.item).to_le_bytes());
                body.extend_from_slice(&w.size_ms.to_le_bytes());
                body.extend_from_slice(&w.start.to_le_bytes());
                body.extend_from_slice(&w.count.to_le_bytes());
                for v in w.stats() {
                    body.extend_from_slice(&v.to_le_bytes());
                }
                body.push(u8::from(w.stddev.is_some()));
            }
            WINDOWS
        }
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(kind);
    names.write(&mut out)?;
    out.extend_from_slice(&body);
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(CodecError::CutShort)?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(self.u64()? as i64)
    }
    fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn str(&mut self, len: usize) -> Result<&str, CodecError> {
        std::str::from_utf8(self.take(len)?).map_err(|e| CodecError::NotUtf8(e.to_string()))
    }
}

/// Decodes a record written by [`encode`].
pub fn decode(record: &[u8]) -> Result<Rows, CodecError> {
    let mut r = Reader {
        data: record,
        at: 0,
    };
    let kind = r.u8()?;
    let n_names = r.u32()? as usize;
    let mut names: Vec<Id> = Vec::with_capacity(n_names.min(1 << 16));
    for _ in 0..n_names {
        let len = r.u16()? as usize;
        names.push(Id::from(r.str(len)?));
    }
    let name = |i: u32| {
        names
            .get(i as usize)
            .cloned()
            .ok_or(CodecError::NameOutOfRange(i))
    };
    let count = r.u32()? as usize;
    match kind {
        SAMPLES => {
            let mut samples = Vec::with_capacity(count.min(1 << 20));
            for _ in 0..count {
                let device = name(r.u32()?)?;
                let item = name(r.u32()?)?;
                let ts = r.i64()?;
                let flags = r.u8()?;
                let value = if flags & 1 != 0 { Some(r.f64()?) } else { None };
                let text = if flags & 2 != 0 {
                    let len = r.u32()? as usize;
                    Some(Box::from(r.str(len)?))
                } else {
                    None
                };
                samples.push(Sample {
                    device,
                    item,
                    ts,
                    value,
                    text,
                });
            }
            Ok(Rows::Samples(Arc::from(samples)))
        }
        WINDOWS => {
            let mut windows = Vec::with_capacity(count.min(1 << 20));
            for _ in 0..count {
                let device = name(r.u32()?)?;
                let item = name(r.u32()?)?;
                let size_ms = r.i64()?;
                let start = r.i64()?;
                let count = r.u64()?;
                let mut v = [0.0; 9];
                for slot in &mut v {
                    *slot = r.f64()?;
                }
                let has_stddev = r.u8()? != 0;
                windows.push(WindowRow::from_stats(
                    device, item, size_ms, start, count, v, has_stddev,
                ));
            }
            Ok(Rows::Windows(Arc::from(windows)))
        }
        other => Err(CodecError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_what_cannot_be_held_is_refused() {
        let m = Rows::Samples(
            (0..7)
                .map(|i| Sample::number("D".into(), "x".into(), i * 1_000, i as f64))
                .collect(),
        );
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
        let w = WindowRow {
            device: "D".into(),
            item: "x".into(),
            size_ms: 10_000,
            start: 20_000,
            end: 30_000,
            count: 1,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            stddev: None,
            p50: 1.0,
            p95: 1.0,
            p99: 1.0,
            first: 1.0,
            last: 1.0,
        };
        let m = Rows::Windows(vec![w].into());
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
        assert!(
            decode(&[1, 9, 9]).is_err(),
            "a cut record is an error, not a panic"
        );
        let long: Id = Id::from("n".repeat(70_000));
        let refused = encode(&Rows::Samples(
            vec![Sample::number(long.clone(), long, 0, 1.0)].into(),
        ));
        assert_eq!(refused, Err(CodecError::NameTooLong(70_000)));
        assert!(
            CodecError::NameTooLong(70_000)
                .to_string()
                .contains("longer than the spool can hold")
        );
    }
}
