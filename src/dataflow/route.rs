//! Keys owned by another process (cluster mode only, DESIGN.md §10). Within a process every
//! worker reads every local batch and keeps the keys it owns; a key owned by a worker of
//! another process would be read by nobody. The worker that reports a batch to the raw sinks
//! (one per batch) also picks that batch's samples of other processes' keys and sends them
//! through a timely exchange on the key's hash — the same hash, modulo all workers of the
//! cluster, that decides ownership — so they reach the one worker that aggregates their key.
//! What arrives is handed to the per-key operator as one more batch, alongside the local ones.

use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::input::SharedBatch;
use super::key_hash;
use crate::sample::Sample;

/// The batches of keys this worker owns that were ingested by other processes.
/// `threads`: workers per process (timely numbers workers process by process).
pub(super) fn from_other_processes<'scope>(
    samples: Stream<'scope, u64, Vec<SharedBatch>>,
    threads: usize,
) -> Stream<'scope, u64, Vec<SharedBatch>> {
    let scope = samples.scope();
    let peers = scope.peers() as u64;
    let process = scope.index() / threads;
    let remote = samples.unary::<CapacityContainerBuilder<Vec<Sample>>, _, _, _>(
        Pipeline,
        "Other processes' keys",
        move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let mut session = output.session(&time);
                    for batch in data.iter().filter(|b| b.report) {
                        for run in batch
                            .samples
                            .chunk_by(|a, b| a.item == b.item && a.device == b.device)
                        {
                            let owner = key_hash(&run[0].device, &run[0].item) % peers;
                            if owner as usize / threads != process {
                                session.give_iterator(run.iter().cloned());
                            }
                        }
                    }
                });
            }
        },
    );
    remote
        .exchange(|s: &Sample| key_hash(&s.device, &s.item))
        .unary::<CapacityContainerBuilder<Vec<SharedBatch>>, _, _, _>(
            Pipeline,
            "Received keys",
            move |_, _| {
                move |input, output| {
                    input.for_each(|time, data| {
                        let samples: Arc<[Sample]> = std::mem::take(data).into();
                        output.session(&time).give(SharedBatch {
                            samples,
                            report: false,
                        });
                    });
                }
            },
        )
}
