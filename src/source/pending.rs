//! Sample messages of devices whose model is not known yet.
//!
//! A lab-dialect Sample message is just rows of numbers: without the device's model there is no
//! telling which item a row is or how far apart its values are. Such messages wait here (raw,
//! as received) while the platform probes the device, and are decoded in arrival order when the
//! model comes. The wait is bounded per device, in total bytes and in age; what falls out is
//! returned to the caller to be dead-lettered as `no_model`, never dropped silently.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::config::PendingConfig;
use crate::id::Id;

/// A message kept raw until its model arrives.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub topic: String,
    pub payload: Bytes,
    pub received_at: i64,
}

/// Waiting messages per device.
#[derive(Debug)]
pub struct Pending {
    config: PendingConfig,
    by_device: HashMap<Id, VecDeque<PendingMessage>>,
    bytes: usize,
    count: usize,
}

impl Pending {
    pub fn new(config: PendingConfig) -> Pending {
        Pending {
            config,
            by_device: HashMap::new(),
            bytes: 0,
            count: 0,
        }
    }

    /// Messages waiting over all devices.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Keeps a message; returns what had to make room for it (oldest first).
    pub fn push(&mut self, device: &Id, message: PendingMessage) -> Vec<(Id, PendingMessage)> {
        let mut evicted = Vec::new();
        let size = message.payload.len();
        let queue = self.by_device.entry(device.clone()).or_default();
        queue.push_back(message);
        self.bytes += size;
        self.count += 1;
        while queue.len() > self.config.max_messages_per_device.max(1) {
            let old = queue.pop_front().expect("non-empty");
            self.bytes -= old.payload.len();
            self.count -= 1;
            evicted.push((device.clone(), old));
        }
        while self.bytes > self.config.max_bytes.bytes() {
            match self.pop_oldest() {
                Some(old) => evicted.push(old),
                None => break,
            }
        }
        evicted
    }

    /// Takes every message of `device`, in arrival order.
    pub fn take(&mut self, device: &str) -> VecDeque<PendingMessage> {
        let queue = self.by_device.remove(device).unwrap_or_default();
        for m in &queue {
            self.bytes -= m.payload.len();
        }
        self.count -= queue.len();
        queue
    }

    /// Removes messages older than `max_age` at `now` (ms).
    pub fn expire(&mut self, now: i64) -> Vec<(Id, PendingMessage)> {
        let cutoff = now - self.config.max_age.as_millis() as i64;
        let mut expired = Vec::new();
        for (device, queue) in &mut self.by_device {
            while queue.front().is_some_and(|m| m.received_at < cutoff) {
                let old = queue.pop_front().expect("non-empty");
                self.bytes -= old.payload.len();
                self.count -= 1;
                expired.push((device.clone(), old));
            }
        }
        self.by_device.retain(|_, q| !q.is_empty());
        expired.sort_by_key(|(_, m)| m.received_at);
        expired
    }

    /// Whether `device` has waiting messages.
    pub fn has(&self, device: &str) -> bool {
        self.by_device.contains_key(device)
    }

    /// Devices with waiting messages.
    pub fn devices(&self) -> impl Iterator<Item = &Id> {
        self.by_device.keys()
    }

    fn pop_oldest(&mut self) -> Option<(Id, PendingMessage)> {
        let device = self
            .by_device
            .iter()
            .filter_map(|(d, q)| q.front().map(|m| (m.received_at, d)))
            .min_by_key(|(ts, _)| *ts)
            .map(|(_, d)| d.clone())?;
        let queue = self.by_device.get_mut(&device)?;
        let old = queue.pop_front()?;
        if queue.is_empty() {
            self.by_device.remove(&device);
        }
        self.bytes -= old.payload.len();
        self.count -= 1;
        Some((device, old))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteSize, HumanDuration};

    fn msg(ts: i64, size: usize) -> PendingMessage {
        PendingMessage {
            topic: "Sample/D/c".into(),
            payload: Bytes::from(vec![b'x'; size]),
            received_at: ts,
        }
    }

    #[test]
    fn bounded_by_count_bytes_and_age() {
        let mut p = Pending::new(PendingConfig {
            max_bytes: ByteSize(100),
            max_messages_per_device: 3,
            max_age: HumanDuration::from_millis(1_000),
        });
        let a: Id = "A".into();
        let b: Id = "B".into();
        for ts in 0..4 {
            let evicted = p.push(&a, msg(ts, 10));
            assert_eq!(evicted.len(), usize::from(ts == 3));
        }
        assert_eq!(p.len(), 3);
        // 30 bytes from A; 80 from B pushes the total over 100: A's oldest goes first.
        let evicted = p.push(&b, msg(10, 80));
        assert_eq!(evicted.len(), 1);
        assert_eq!((&*evicted[0].0, evicted[0].1.received_at), ("A", 1));
        let expired = p.expire(1_005);
        assert_eq!(
            expired
                .iter()
                .map(|(_, m)| m.received_at)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        let b_msgs = p.take("B");
        assert_eq!(b_msgs.len(), 1);
        assert!(p.is_empty());
        assert_eq!(p.bytes, 0);
    }
}
