//! Framing of records in the engine's own files (the write-ahead log and the sinks' spools):
//! each file starts with a magic naming its kind and version, each record is
//!
//! ```text
//! [u32 RECORD][u32 length][u32 crc32 of length and payload][payload]      little-endian
//! ```
//!
//! so that reading back survives what `kill -9`, a full disk or a bad sector leave behind:
//!
//! - a **torn tail** (the last record cut short by a crash, or a partial write on a full disk)
//!   is the normal end of a crashed writer's file: reading stops there, and the caller may cut
//!   the file back to its last whole record;
//! - a **corrupt** record (a checksum that fails, a length beyond any record) is skipped: the
//!   reader looks for the next `RECORD` marker whose record checks out and goes on from there,
//!   so records after the damage are recovered. The marker makes this search a byte scan, not
//!   a checksum at every offset.
//!
//! Lengths are bounded ([`MAX_RECORD`]) and checked against what the file holds before anything
//! is allocated, so a damaged length never becomes a huge allocation.

use flate2::Crc;

/// Marks the start of every record.
pub const RECORD: u32 = 0x4352_534D; // "MSRC"
/// The largest record written or read.
pub const MAX_RECORD: usize = 1 << 30;
/// Bytes before a record's payload.
pub const HEADER: usize = 12;

/// The magic at the start of a file of one kind, format version 2 (version 1 had no file magic
/// and no record marker: [`legacy_records`] reads it).
pub type FileMagic = [u8; 8];

/// The framed form of `payload`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&RECORD.to_le_bytes());
    let length = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&checksum(&length, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn checksum(length: &[u8; 4], payload: &[u8]) -> u32 {
    let mut crc = Crc::new();
    crc.update(length);
    crc.update(payload);
    crc.sum()
}

/// What is wrong at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside a record that starts here: a write cut short.
    TornTail { offset: usize },
    /// Bytes from `offset` that are no valid record, up to `resumed_at` (where the next good
    /// record starts, or the end of the file).
    Corrupt { offset: usize, resumed_at: usize },
}

/// Why the record at an offset is not readable.
enum Bad {
    /// The file ends before the record does.
    Short,
    /// Marker, length or checksum wrong.
    Invalid,
}

/// The payload of the record at `at`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize) -> Result<(&[u8], usize), Bad> {
    let rest = &bytes[at..];
    if rest.len() < HEADER {
        // A header cut short is a torn tail only if what there is could begin a record.
        let marker = RECORD.to_le_bytes();
        let n = rest.len().min(4);
        return Err(if rest[..n] == marker[..n] {
            Bad::Short
        } else {
            Bad::Invalid
        });
    }
    if rest[..4] != RECORD.to_le_bytes() {
        return Err(Bad::Invalid);
    }
    let length: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(length) as usize;
    if len > MAX_RECORD {
        return Err(Bad::Invalid);
    }
    if rest.len() - HEADER < len {
        return Err(Bad::Short);
    }
    let stored = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    let payload = &rest[HEADER..HEADER + len];
    if checksum(&length, payload) != stored {
        return Err(Bad::Invalid);
    }
    Ok((payload, at + HEADER + len))
}

/// The offset of the next whole, valid record after `from`, if any.
pub fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let marker = RECORD.to_le_bytes();
    let mut at = from;
    while at + HEADER <= bytes.len() {
        let found = bytes[at..].windows(4).position(|w| w == marker)?;
        at += found;
        if record_at(bytes, at).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The offset of a record cut short by the end of the file, after `from`, if there is one
/// (the last write a crash interrupted).
fn torn_after(bytes: &[u8], from: usize) -> Option<usize> {
    let marker = RECORD.to_le_bytes();
    let mut at = from;
    while at < bytes.len() {
        let found = bytes[at..].windows(4).position(|w| w == marker)?;
        at += found;
        if matches!(record_at(bytes, at), Err(Bad::Short)) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Reads the records of a file's bytes (after its magic), recovering after damage.
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Damage met so far, in file order.
    pub damage: Vec<Damage>,
}

impl<'a> Records<'a> {
    /// Records of `bytes`, starting at `from` (after the file's magic).
    pub fn new(bytes: &'a [u8], from: usize) -> Records<'a> {
        Records {
            bytes,
            at: from,
            damage: Vec::new(),
        }
    }

    /// Where the last whole record ended: a torn file can be cut back to here.
    pub fn good_end(&self) -> usize {
        self.at
    }
}

impl<'a> Iterator for Records<'a> {
    /// (offset, payload)
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.at >= self.bytes.len() {
                return None;
            }
            let at = self.at;
            match record_at(self.bytes, at) {
                Ok((payload, next)) => {
                    self.at = next;
                    return Some((at, payload));
                }
                Err(bad) => match resync(self.bytes, at + 1) {
                    Some(resumed_at) => {
                        self.damage.push(Damage::Corrupt {
                            offset: at,
                            resumed_at,
                        });
                        self.at = resumed_at;
                    }
                    None => {
                        let torn = match bad {
                            Bad::Short => Some(at),
                            // Corrupt, and maybe a record cut short after it.
                            Bad::Invalid => {
                                let torn = torn_after(self.bytes, at + 1);
                                self.damage.push(Damage::Corrupt {
                                    offset: at,
                                    resumed_at: torn.unwrap_or(self.bytes.len()),
                                });
                                torn
                            }
                        };
                        if let Some(offset) = torn {
                            self.damage.push(Damage::TornTail { offset });
                        }
                        // Stay at the damage: `good_end` is where a cut would go.
                        return None;
                    }
                },
            }
        }
    }
}

/// Records of a version 1 file (`[u32 length][u32 crc32 of payload][payload]`, no marker):
/// read up to the first damaged one.
pub fn legacy_records(bytes: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 8)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let stored = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let payload = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
        let mut crc = Crc::new();
        crc.update(payload);
        (crc.sum() == stored).then(|| {
            at += 8 + len;
            payload
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        payloads.iter().flat_map(|p| encode(p)).collect()
    }

    fn read(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<Damage>) {
        let mut records = Records::new(bytes, 0);
        let got = records.by_ref().map(|(_, p)| p.to_vec()).collect();
        (got, records.damage)
    }

    #[test]
    fn reads_back_and_stops_at_a_torn_tail() {
        let bytes = file(&[b"one", b"", b"three"]);
        let (got, damage) = read(&bytes);
        assert_eq!(got, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(damage.is_empty());
        for cut in 1..encode(b"three").len() {
            let torn = &bytes[..bytes.len() - cut];
            let mut records = Records::new(torn, 0);
            let got: Vec<_> = records.by_ref().collect();
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(
                records.damage,
                vec![Damage::TornTail {
                    offset: records.good_end()
                }],
                "cut {cut}"
            );
            assert_eq!(records.good_end(), encode(b"one").len() + encode(b"").len());
        }
    }

    #[test]
    fn a_bit_flip_loses_one_record_and_the_rest_is_recovered() {
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let clean = file(&refs);
        for position in (0..clean.len()).step_by(7) {
            let mut bytes = clean.clone();
            bytes[position] ^= 0x10;
            let (got, damage) = read(&bytes);
            assert!(got.len() >= 19, "at {position}: {} records", got.len());
            assert!(
                got.iter().all(|g| payloads.contains(g)),
                "no invented record"
            );
            assert_eq!(damage.len(), 1, "at {position}: {damage:?}");
        }
        // A huge length is damage, not an allocation.
        let mut bytes = clean.clone();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let (got, damage) = read(&bytes);
        assert_eq!(got.len(), 19);
        assert!(matches!(damage[0], Damage::Corrupt { offset: 0, .. }));
        // Garbage at the end is corrupt, not torn.
        let mut bytes = clean;
        bytes.extend_from_slice(b"garbage!garbage!");
        let (got, damage) = read(&bytes);
        assert_eq!(got.len(), 20);
        assert!(matches!(damage[0], Damage::Corrupt { .. }));
    }

    #[test]
    fn legacy_files_read_to_their_first_damage() {
        let mut bytes = Vec::new();
        for payload in [&b"ab"[..], b"cde"] {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            let mut crc = Crc::new();
            crc.update(payload);
            bytes.extend_from_slice(&crc.sum().to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        let got: Vec<&[u8]> = legacy_records(&bytes).collect();
        assert_eq!(got, vec![&b"ab"[..], b"cde"]);
        let got: Vec<&[u8]> = legacy_records(&bytes[..bytes.len() - 1]).collect();
        assert_eq!(got, vec![&b"ab"[..]]);
    }

    #[test]
    fn a_corrupt_record_before_a_torn_tail_is_both() {
        let bytes = file(&[&[1u8; 50][..], &[2u8; 50], &[3u8; 50]]);
        let second = resync(&bytes, 1).unwrap();
        let third = resync(&bytes, second + 1).unwrap();
        let mut bytes = bytes;
        bytes[second + HEADER + 10] ^= 1;
        bytes.truncate(bytes.len() - 5);
        let (got, damage) = read(&bytes);
        assert_eq!(got, vec![vec![1u8; 50]]);
        assert_eq!(
            damage,
            vec![
                Damage::Corrupt {
                    offset: second,
                    resumed_at: third
                },
                Damage::TornTail { offset: third }
            ]
        );
    }
}
