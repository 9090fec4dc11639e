//! Planning kernels over sequence lengths: micro-batches under a token budget
//! ([`pack_microbatches`]), and a balanced split of a batch across data-parallel ranks
//! ([`balanced_partition`]).

mod differencing;
mod exchange;
mod microbatches;
mod partition;

use std::cmp::Reverse;

use crate::error::{EngineError, Result};

pub use microbatches::pack_microbatches;
pub use partition::balanced_partition;

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
    let n = lengths.len();
    if n <= u32::MAX as usize && lengths.iter().all(|&l| l <= u32::MAX as i64) {
        // Both keys in one `u64` (complemented length above the index): a plain integer sort,
        // faster than comparing tuples through the index. Lengths are known non-negative.
        let mut keys: Vec<u64> = (0..n)
            .map(|i| (u64::from(!(lengths[i] as u32)) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        return keys
            .iter()
            .map(|&k| (k & u64::from(u32::MAX)) as usize)
            .collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    // The keys are distinct (the index breaks ties), so an unstable sort gives the same order.
    order.sort_unstable_by_key(|&i| (Reverse(lengths[i]), i));
    order
}

/// An unsigned integer holding a pair of a size (high bits) and an index or order (low `shift`
/// bits): the search keys of best fit and the heap keys of differencing.
trait PackedKey: Ord + Copy {
    fn pack(room: u64, bin: usize, shift: u32) -> Self;
    fn unpack(self, shift: u32) -> (u64, usize);
}

macro_rules! impl_packed_key {
    ($t:ty) => {
        impl PackedKey for $t {
            fn pack(room: u64, bin: usize, shift: u32) -> Self {
                (<$t>::from(room) << shift) | bin as $t
            }
            fn unpack(self, shift: u32) -> (u64, usize) {
                ((self >> shift) as u64, (self & ((1 << shift) - 1)) as usize)
            }
        }
    };
}
impl_packed_key!(u64);
impl_packed_key!(u128);
