//! Block production in the TFChain SIMULATOR: when the simulated clock
//! moves, the chain goes through every block it passed, in order, and does
//! what the real chain does in them: bill each live contract in its cycle
//! slot (`contract_id % billing_cycle_blocks`), and record each reporting
//! node's `tfgridModule.NodeUptimeReported` every 40 minutes. It then drops
//! the events older than the retention.
//!
//! Only the blocks where something happens are visited: a 48-hour advance
//! over 50 contracts and 1,000 nodes is a few thousand bills and some
//! 72,000 uptime reports, sorted by block.

use std::collections::BTreeMap;

use serde_json::json;

use marketplace_app::tfchain::Block;

use super::chain::{event, BLOCK_SECS};
use super::Sim;

/// Blocks between two uptime reports of a node: 40 minutes.
pub(super) const UPTIME_PERIOD_BLOCKS: u32 = 40 * 60 / BLOCK_SECS as u32;

/// What happens in a block, in the order it happens within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    Uptime(u32),
    Bill(u64),
}

/// When each node last came up (`NodeUptimeReported`'s uptime counts from
/// there); nodes not listed have been up since genesis.
#[derive(Default)]
pub(super) struct Uptime {
    up_since: BTreeMap<u32, i64>,
}

impl Uptime {
    /// The node booted at `now`.
    pub(super) fn booted(&mut self, node_id: u32, now: i64) {
        self.up_since.insert(node_id, now);
    }

    fn up_since(&self, node_id: u32, genesis: i64) -> i64 {
        self.up_since.get(&node_id).copied().unwrap_or(genesis)
    }
}

/// The blocks in `first..=last` that are `offset` modulo `period`.
fn every(first: u32, last: u32, offset: u32, period: u32) -> impl Iterator<Item = u32> {
    let period = period.max(1);
    let offset = offset % period;
    let start = first + (offset + period - first % period) % period;
    (start..=last).step_by(period as usize)
}

impl Sim {
    /// Produces the blocks after the one at `from` up to the one at the
    /// clock's now (see the module documentation).
    pub(super) fn produce_blocks(&mut self, from: i64) {
        // Deployments that settled report their resources before billing.
        self.settle();
        let first = self.chain.block_at(from).number.saturating_add(1);
        let last = self.chain.block_at(self.catalog.now).number;
        if first <= last {
            let mut tasks = Vec::new();
            let cycle = self.options.billing_cycle_blocks.max(1);
            for id in self.chain.live_contract_ids() {
                let slot = u32::try_from(id % u64::from(cycle)).unwrap_or(0);
                tasks.extend(every(first, last, slot, cycle).map(|b| (b, Task::Bill(id))));
            }
            let reporting: Vec<u32> = self
                .catalog
                .nodes
                .values()
                .filter(|n| n.answers())
                .map(|n| n.node.node_id)
                .collect();
            for node_id in reporting {
                // Staggered: node n first reports n % 40 minutes in.
                let offset = (node_id % 40) * (60 / BLOCK_SECS as u32);
                tasks.extend(
                    every(first, last, offset, UPTIME_PERIOD_BLOCKS)
                        .map(|b| (b, Task::Uptime(node_id))),
                );
            }
            tasks.sort_unstable();
            for (number, task) in tasks {
                let block = self.chain.block(number);
                let events = match task {
                    Task::Uptime(node_id) => vec![self.uptime_report(node_id, block)],
                    Task::Bill(id) => self.bill(id, block),
                };
                if !events.is_empty() {
                    self.chain.record(block, events);
                }
            }
        }
        self.chain.prune(last, self.options.event_retention_blocks);
    }

    /// `NodeUptimeReported(node_id, now, uptime)`, a tuple: its data is the
    /// JSON array `[node_id, now, uptime]`, seconds.
    fn uptime_report(&self, node_id: u32, block: Block) -> super::chain::Pending {
        let since = self.uptime.up_since(node_id, self.chain.genesis());
        let uptime = (block.timestamp - since).max(0);
        event(
            "tfgridModule",
            "NodeUptimeReported",
            json!([node_id, block.timestamp, uptime]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finds_the_slots_in_a_range() {
        assert_eq!(every(1, 30, 7, 10).collect::<Vec<_>>(), [7, 17, 27]);
        assert_eq!(every(7, 27, 7, 10).collect::<Vec<_>>(), [7, 17, 27]);
        assert_eq!(every(8, 26, 7, 10).collect::<Vec<_>>(), [17]);
        assert_eq!(every(1, 5, 0, 10).count(), 0);
        assert_eq!(every(1, 10, 0, 10).collect::<Vec<_>>(), [10]);
    }
}
