//! [`balanced_partition`]: the split of a batch across data-parallel ranks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{by_decreasing_length, check_lengths};
use crate::error::{EngineError, Result};
use crate::segments::Groups;

/// The most parts [`balanced_partition`] makes (one per data-parallel rank): it bounds the
/// output before anything is allocated.
pub const MAX_PARTS: i64 = 1 << 16;

/// Split sequence indices into `n_parts` parts with token sums as equal as possible, e.g. to
/// give each data-parallel rank the same work: longest processing time first (LPT; Graham 1969,
/// "Bounds on multiprocessing timing anomalies"): sequences by decreasing length (ties by
/// index), each to the part with the smallest sum so far (ties to the lowest part).
///
/// The spread (max - min part sum) is at most the longest length: the heaviest part was the
/// lightest when its last sequence joined it. The heaviest part is at most `4/3 - 1/(3 k)`
/// times the optimum (Graham). Part indices are ascending; parts are ordered by decreasing
/// token sum (ties by the order they were opened). Deterministic. O(n log n + n log k).
///
/// Errors: negative length, lengths summing past `i64::MAX`, `n_parts` outside
/// `[1, MAX_PARTS]`.
pub fn balanced_partition(lengths: &[i64], n_parts: i64) -> Result<Groups> {
    check_lengths("lengths", lengths)?;
    if !(1..=MAX_PARTS).contains(&n_parts) {
        return Err(EngineError::range(
            "n_parts",
            format!("an integer in [1, {MAX_PARTS}]"),
            n_parts,
        ));
    }
    let total: u128 = lengths.iter().map(|&l| l as u128).sum();
    if total > i64::MAX as u128 {
        return Err(EngineError::range(
            "lengths",
            "a sum of at most 2^63 - 1",
            total,
        ));
    }
    let k = n_parts as usize;
    // The lightest part on top: (sum, part) in a min-heap.
    let mut parts: BinaryHeap<Reverse<(i64, usize)>> = (0..k).map(|p| Reverse((0, p))).collect();
    let mut part_of = vec![0; lengths.len()];
    for i in by_decreasing_length(lengths) {
        let Reverse((sum, p)) = parts.pop().expect("k >= 1 parts");
        part_of[i] = p;
        parts.push(Reverse((sum + lengths[i], p)));
    }
    // Renumber the parts by decreasing sum.
    let mut by_sum: Vec<(i64, usize)> = parts.into_iter().map(|Reverse(x)| x).collect();
    by_sum.sort_unstable_by_key(|&(sum, p)| (Reverse(sum), p));
    let mut rank = vec![0; k];
    for (r, &(_, p)) in by_sum.iter().enumerate() {
        rank[p] = r;
    }
    part_of.iter_mut().for_each(|p| *p = rank[*p]);
    Ok(Groups::from_labels(&part_of, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sums(lengths: &[i64], parts: &Groups) -> Vec<i64> {
        parts
            .iter()
            .map(|p| p.iter().map(|&i| lengths[i]).sum())
            .collect()
    }

    /// The same rule, written as a scan over the parts for every sequence.
    fn reference(lengths: &[i64], k: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| (Reverse(lengths[i]), i));
        let mut parts: Vec<(i64, Vec<usize>)> = vec![(0, vec![]); k];
        for i in order {
            let p = (0..k).min_by_key(|&p| (parts[p].0, p)).unwrap();
            parts[p].0 += lengths[i];
            parts[p].1.push(i);
        }
        let mut numbered: Vec<(usize, (i64, Vec<usize>))> = parts.into_iter().enumerate().collect();
        numbered.sort_by_key(|(p, (sum, _))| (Reverse(*sum), *p));
        numbered
            .into_iter()
            .map(|(_, (_, mut items))| {
                items.sort_unstable();
                items
            })
            .collect()
    }

    proptest! {
        #[test]
        fn partition_is_lpt_covers_once_and_spreads_at_most_the_longest(
            lengths in prop::collection::vec(0i64..1000, 0..100), k in 1i64..9
        ) {
            let parts = balanced_partition(&lengths, k).unwrap();
            let got: Vec<Vec<usize>> = parts.iter().map(|p| p.to_vec()).collect();
            prop_assert_eq!(got, reference(&lengths, k as usize));
            let s = sums(&lengths, &parts);
            prop_assert!(s.windows(2).all(|w| w[0] >= w[1]));
            prop_assert!(s[0] - s[s.len() - 1] <= lengths.iter().copied().max().unwrap_or(0));
        }
    }

    #[test]
    fn lengths_near_the_limit_partition_and_overflow_is_refused() {
        let parts = balanced_partition(&[1 << 61, 1 << 61, 1 << 61, 3], 2).unwrap();
        assert_eq!(
            parts.iter().collect::<Vec<_>>(),
            vec![&[0, 2][..], &[1, 3][..]]
        );
        let err = balanced_partition(&[i64::MAX, 1], 2).unwrap_err();
        assert!(err.to_string().starts_with("lengths"));
    }

    #[test]
    fn part_counts_outside_the_range_are_refused() {
        for k in [0, -3, MAX_PARTS + 1, 1 << 31] {
            let err = balanced_partition(&[1, 2], k).unwrap_err();
            assert!(err
                .to_string()
                .starts_with("n_parts: expected an integer in"));
        }
    }

    #[test]
    fn partition_of_equal_items_is_even() {
        let parts = balanced_partition(&[3; 8], 4).unwrap();
        assert!(parts.iter().all(|p| p.len() == 2));
    }
}
