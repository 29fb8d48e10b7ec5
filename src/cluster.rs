//! Running as one process of several (DESIGN.md §10): who this process is, where its peers
//! listen, and which devices it speaks to. One place decides device ownership so the source
//! (probes, polls, registrations) and the tests agree on it.
//!
//! The processes form one timely computation over TCP (timely's `Cluster` configuration); the
//! broker splits Sample traffic between them with a shared subscription. Control traffic to a
//! device is sent by one process only, its *owner*: `hash(device) % processes`, a hash that does not depend on the
//! process or machine (FxHash, no random seed), so every process reaches the same answer
//! without talking.

use std::hash::{Hash, Hasher};
use std::path::Path;

/// Which share of the devices this process speaks to. The default is a single process that
/// owns every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub processes: usize,
    pub process: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            processes: 1,
            process: 0,
        }
    }
}

impl Shard {
    /// The process that sends `device` its probes, polls and registration answers.
    pub fn owner(&self, device: &str) -> usize {
        if self.processes <= 1 {
            return 0;
        }
        let mut h = rustc_hash::FxHasher::default();
        device.hash(&mut h);
        (h.finish() % self.processes as u64) as usize
    }

    pub fn owns(&self, device: &str) -> bool {
        self.owner(device) == self.process
    }

    /// More than one process.
    pub fn is_cluster(&self) -> bool {
        self.processes > 1
    }
}

/// This process's place in a cluster of processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub shard: Shard,
    /// Where every process listens for its peers (`host:port`), in process order.
    pub addresses: Vec<String>,
}

impl Cluster {
    /// Reads a hosts file (timely's format: one `host:port` per line, in process order; blank
    /// lines and `#` comments ignored). `processes`, when given, must match the file.
    pub fn from_hosts_file(
        path: &Path,
        processes: Option<usize>,
        process: usize,
    ) -> Result<Cluster, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the hosts file: {e}", path.display()))?;
        Cluster::parse(&text, &path.display().to_string(), processes, process)
    }

    fn parse(
        text: &str,
        origin: &str,
        processes: Option<usize>,
        process: usize,
    ) -> Result<Cluster, String> {
        let mut addresses = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let valid = line
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid || line.contains(char::is_whitespace) {
                return Err(format!(
                    "{origin}:{}: expected one host:port per line, found {line:?}",
                    n + 1
                ));
            }
            addresses.push(line.to_string());
        }
        if addresses.is_empty() {
            return Err(format!("{origin}: the hosts file lists no process"));
        }
        if let Some(n) = processes
            && n != addresses.len()
        {
            return Err(format!(
                "{origin}: --processes {n} but the hosts file lists {} processes",
                addresses.len()
            ));
        }
        if process >= addresses.len() {
            return Err(format!(
                "--process {process} is out of range: the hosts file {origin} lists {} processes (0 to {})",
                addresses.len(),
                addresses.len() - 1
            ));
        }
        Ok(Cluster {
            shard: Shard {
                processes: addresses.len(),
                process,
            },
            addresses,
        })
    }

    /// Process 0 serves the HTTP API for the whole cluster.
    pub fn serves_api(&self) -> bool {
        self.shard.process == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_files_are_read_in_order_with_comments_and_blank_lines() {
        let c = Cluster::parse(
            "# three nodes\n127.0.0.1:2101\n\n127.0.0.1:2102 # b\nnode-c:2103\n",
            "hosts",
            Some(3),
            2,
        )
        .unwrap();
        assert_eq!(
            c.addresses,
            ["127.0.0.1:2101", "127.0.0.1:2102", "node-c:2103"]
        );
        assert_eq!(
            c.shard,
            Shard {
                processes: 3,
                process: 2
            }
        );
        assert!(!c.serves_api());
    }

    #[test]
    fn bad_hosts_files_name_the_line_and_the_mismatch() {
        let e = Cluster::parse("127.0.0.1:2101\nnode-b\n", "h.txt", None, 0).unwrap_err();
        assert!(e.starts_with("h.txt:2: expected one host:port"), "{e}");
        let e = Cluster::parse("a:1\nb:2\n", "h.txt", Some(3), 0).unwrap_err();
        assert!(
            e.contains("--processes 3 but the hosts file lists 2"),
            "{e}"
        );
        let e = Cluster::parse("a:1\nb:2\n", "h.txt", None, 2).unwrap_err();
        assert!(e.contains("--process 2 is out of range"), "{e}");
        let e = Cluster::parse("# none\n", "h.txt", None, 0).unwrap_err();
        assert!(e.contains("lists no process"), "{e}");
    }

    #[test]
    fn every_device_has_exactly_one_owner_and_the_owners_spread() {
        let shards: Vec<Shard> = (0..3)
            .map(|process| Shard {
                processes: 3,
                process,
            })
            .collect();
        let mut per_process = [0usize; 3];
        for d in 0..300 {
            let device = format!("STRESS_TEST_{d:05}");
            let owners: Vec<usize> = shards
                .iter()
                .filter(|s| s.owns(&device))
                .map(|s| s.process)
                .collect();
            assert_eq!(owners.len(), 1, "{device}: {owners:?}");
            per_process[owners[0]] += 1;
        }
        assert!(per_process.iter().all(|&n| n > 60), "{per_process:?}");
        assert!(Shard::default().owns("anything"));
    }
}
