//! [`balanced_partition`]: the split of a batch across data-parallel ranks.

use super::check_lengths;
use super::differencing::largest_differencing;
use super::exchange::{exact_split, worth_trying};
use crate::error::{EngineError, Result};
use crate::segments::Groups;

/// Split sequence indices into `n_parts` parts with token sums as equal as possible, e.g. to
/// give each data-parallel rank the same work. Part indices are ascending; parts are ordered by
/// decreasing token sum. Deterministic.
///
/// Two methods, the cheaper first:
/// * With many items per part (at least 32, and `(n / k)^2` at least about an eighth of the
///   longest length, up to 2^20), the exact split (module `exchange`): items dealt round-robin,
///   then evened out by moving and swapping items, to sums that differ by at most 1, the
///   smallest spread any split has. O(n) plus O(k) per exchange.
/// * Otherwise, or when that split finds no exchange, largest differencing (Karmarkar & Karp
///   1982, k-way), O(n k log n), in module `differencing`.
///
/// So the spread is never above the Karmarkar–Karp heuristic's, and is optimal whenever the
/// first method succeeds (nearly always on rollout batches of thousands of sequences).
///
/// Errors: negative length, lengths summing past `i64::MAX`, `n_parts < 1`.
pub fn balanced_partition(lengths: &[i64], n_parts: usize) -> Result<Groups> {
    // One vectorised pass: a negative length shows in the sign of the bitwise or, which also
    // bounds the longest length, and the wrapping sum is exact if n such lengths fit in an i64.
    let (bits, wrapped) = lengths
        .iter()
        .fold((0i64, 0i64), |(or, sum), &l| (or | l, sum.wrapping_add(l)));
    if bits < 0 {
        check_lengths("lengths", lengths)?;
    }
    if n_parts < 1 {
        return Err(EngineError::range("n_parts", "at least 1", n_parts));
    }
    let n = lengths.len();
    let total = if bits as u128 * n as u128 <= i64::MAX as u128 {
        wrapped as u128
    } else {
        lengths.iter().map(|&l| l as u128).sum()
    };
    if total > i64::MAX as u128 {
        return Err(EngineError::range(
            "lengths",
            "a sum of at most 2^63 - 1",
            total,
        ));
    }
    if worth_trying(n, n_parts, bits) {
        if let Some(parts) = exact_split(lengths, n_parts, total as i64, bits) {
            return Ok(parts);
        }
    }
    Ok(largest_differencing(lengths, n_parts, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spread(lengths: &[i64], parts: &Groups) -> i64 {
        let sums: Vec<i64> = parts
            .iter()
            .map(|p| p.iter().map(|&i| lengths[i]).sum())
            .collect();
        sums.iter().max().unwrap() - sums.iter().min().unwrap()
    }

    proptest! {
        #[test]
        fn partition_covers_once_and_beats_round_robin_bound(
            lengths in prop::collection::vec(0i64..1000, 0..100), k in 1usize..6
        ) {
            let parts = balanced_partition(&lengths, k).unwrap();
            prop_assert_eq!(parts.len(), k);
            let mut seen = parts.members.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            // Neither method leaves a spread above the largest item.
            prop_assert!(spread(&lengths, &parts) <= lengths.iter().copied().max().unwrap_or(0));
        }

        #[test]
        fn partition_is_optimal_or_largest_differencing(
            lengths in prop::collection::vec(0i64..2000, 0..400), k in 1usize..6
        ) {
            let parts = balanced_partition(&lengths, k).unwrap();
            let total = lengths.iter().map(|&l| l as u128).sum();
            let differencing = largest_differencing(&lengths, k, total);
            let s = spread(&lengths, &parts);
            prop_assert!(s <= spread(&lengths, &differencing));
            prop_assert!(s <= 1 || parts == differencing);
        }
    }

    #[test]
    fn lengths_past_the_table_take_largest_differencing() {
        let mut lengths: Vec<i64> = (0..512).map(|i| 1 + (i * 7919) % 4000).collect();
        lengths[0] = 1 << 21;
        let total = lengths.iter().map(|&l| l as u128).sum();
        assert_eq!(
            balanced_partition(&lengths, 4).unwrap(),
            largest_differencing(&lengths, 4, total)
        );
    }

    #[test]
    fn lengths_too_long_for_64_bit_keys_partition_the_same() {
        // Sums near 2^62 leave no bits for the order in a `u64` key: the `u128` keys are used.
        // Scaling every length scales every spread, so the merges are the same.
        let narrow = [4, 3, 4, 5, 2];
        let wide = balanced_partition(&narrow.map(|l| l << 58), 2).unwrap();
        let narrow = balanced_partition(&narrow, 2).unwrap();
        assert_eq!(
            wide.iter().collect::<Vec<_>>(),
            narrow.iter().collect::<Vec<_>>()
        );
        let err = balanced_partition(&[i64::MAX, 1], 2).unwrap_err();
        assert!(err.to_string().starts_with("lengths"));
    }

    #[test]
    fn partition_of_equal_items_is_even() {
        let parts = balanced_partition(&[3; 8], 4).unwrap();
        assert!(parts.iter().all(|p| p.len() == 2));
    }
}
