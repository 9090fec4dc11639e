//! Planning kernels over sequence lengths: micro-batches under a token budget
//! ([`pack_microbatches`]), and a balanced split of a batch across data-parallel ranks
//! ([`balanced_partition`]). Both run once per step on a few thousand integers, so they are
//! written plainly: a sort and a search tree or heap.

mod microbatches;
mod partition;

use std::cmp::Reverse;

use crate::error::{EngineError, Result};

pub use microbatches::pack_microbatches;
pub use partition::{balanced_partition, MAX_PARTS};

fn check_lengths(name: &'static str, lengths: &[i64]) -> Result<()> {
    match lengths.iter().position(|&l| l < 0) {
        None => Ok(()),
        Some(i) => Err(EngineError::range(
            name,
            "non-negative lengths",
            format!("{} at index {i}", lengths[i]),
        )),
    }
}

/// Indices sorted by decreasing length, ties by index.
fn by_decreasing_length(lengths: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // The keys are distinct (the index breaks ties), so an unstable sort gives the same order.
    order.sort_unstable_by_key(|&i| (Reverse(lengths[i]), i));
    order
}
