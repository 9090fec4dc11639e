//! [`pack_microbatches`]: micro-batches of sequence indices under a token budget.

use std::collections::BTreeSet;

use super::{by_decreasing_length, check_lengths};
use crate::error::{EngineError, Result};
use crate::segments::Groups;

/// Group sequence indices into micro-batches whose cost stays within `max_tokens`.
///
/// Cost of a micro-batch: the sum of its lengths (`padded = false`, for packed/varlen model
/// input) or `count * max length` (`padded = true`, the size of its `[B, L]` padded tensor).
/// With `prompt_lengths`, each sequence also has a prompt that is padded on its own: the padded
/// cost is `count * (max prompt length + max length)`, the size of a `[B, P + R]` input whose
/// prompts are left-padded to `P` and the rest right-padded to `R`, and the summed cost counts
/// both. Best-fit decreasing (sum) or next-fit over decreasing total lengths (padded); a
/// sequence longer than the budget gets a micro-batch of its own, and is the only way a budget is
/// exceeded. Costs are computed in `i128`, so they are exact for any `i64` lengths. Each
/// micro-batch's indices are ascending; micro-batches come in order of creation.
///
/// Errors: negative length, `prompt_lengths` not of length `n`, `max_tokens < 1`.
pub fn pack_microbatches(
    lengths: &[i64],
    max_tokens: i64,
    padded: bool,
    prompt_lengths: Option<&[i64]>,
) -> Result<Groups> {
    check_lengths("lengths", lengths)?;
    if max_tokens < 1 {
        return Err(EngineError::range("max_tokens", "at least 1", max_tokens));
    }
    let n = lengths.len();
    let prompts = match prompt_lengths {
        Some(p) if p.len() != n => {
            return Err(EngineError::shape(
                "prompt_lengths",
                format!("length {n} (as lengths)"),
                p.len(),
            ))
        }
        Some(p) => {
            check_lengths("prompt_lengths", p)?;
            p
        }
        None => &[],
    };
    let prompt = |i: usize| i128::from(prompts.get(i).copied().unwrap_or(0));
    let length = |i: usize| i128::from(lengths[i]);
    // The order: by total length, saturated at i64::MAX, where only sequences lie that exceed
    // every budget alone (and so get micro-batches of their own in any order).
    let totals: Vec<i64> = (0..n)
        .map(|i| lengths[i].saturating_add(prompts.get(i).copied().unwrap_or(0)))
        .collect();
    let budget = i128::from(max_tokens);
    // The micro-batch of each sequence; micro-batches are numbered in order of creation.
    let mut bin_of = vec![0; n];
    let mut n_bins = 0;
    if padded {
        // The longest prompt and rest of the open micro-batch, and how many it holds.
        let (mut width_p, mut width_r, mut count) = (0, 0, 0);
        for i in by_decreasing_length(&totals) {
            let (p, r) = (width_p.max(prompt(i)), width_r.max(length(i)));
            if n_bins == 0 || (count + 1) * (p + r) > budget {
                (width_p, width_r, count) = (prompt(i), length(i), 0);
                n_bins += 1;
            } else {
                (width_p, width_r) = (p, r);
            }
            count += 1;
            bin_of[i] = n_bins - 1;
        }
    } else {
        // Best fit: the open micro-batch with the least room that still holds the sequence, ties
        // to the lowest; the open ones are a search tree of (room, micro-batch).
        let mut open: BTreeSet<(i128, usize)> = BTreeSet::new();
        for i in by_decreasing_length(&totals) {
            let cost = prompt(i) + length(i);
            bin_of[i] = match open.range((cost, 0)..).next().copied() {
                Some((room, b)) => {
                    open.remove(&(room, b));
                    open.insert((room - cost, b));
                    b
                }
                None => {
                    if cost < budget {
                        open.insert((budget - cost, n_bins));
                    }
                    n_bins += 1;
                    n_bins - 1
                }
            };
        }
    }
    Ok(Groups::from_labels(&bin_of, n_bins))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn microbatches_cover_once_and_respect_budget(
            pairs in prop::collection::vec((0i64..100, 0i64..40), 0..80), budget in 1i64..300,
            padded in any::<bool>(), with_prompts in any::<bool>(),
        ) {
            let lengths: Vec<i64> = pairs.iter().map(|p| p.0).collect();
            let prompts: Vec<i64> = pairs.iter().map(|p| if with_prompts { p.1 } else { 0 }).collect();
            let given = with_prompts.then_some(&prompts[..]);
            let bins = pack_microbatches(&lengths, budget, padded, given).unwrap();
            let mut seen = bins.members.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            for bin in bins.iter() {
                prop_assert!(!bin.is_empty() && bin.windows(2).all(|w| w[0] < w[1]));
                let longest = |x: &[i64]| bin.iter().map(|&i| x[i]).max().unwrap();
                let cost = if padded {
                    bin.len() as i64 * (longest(&prompts) + longest(&lengths))
                } else {
                    bin.iter().map(|&i| prompts[i] + lengths[i]).sum()
                };
                prop_assert!(cost <= budget || bin.len() == 1);
            }
        }

    }

    #[test]
    fn sequences_far_beyond_the_budget_get_their_own_microbatches() {
        let bins = pack_microbatches(&[i64::MAX / 2, 3, 1 << 40, 4], 8, false, None).unwrap();
        assert_eq!(
            bins.iter().collect::<Vec<_>>(),
            vec![&[0][..], &[2][..], &[1, 3][..]]
        );
    }

    #[test]
    fn lengths_near_2_pow_62_never_overflow_a_budget() {
        let big = 1i64 << 62;
        for padded in [false, true] {
            let bins = pack_microbatches(&[big, big, 1], i64::MAX, padded, Some(&[big, big, 0]));
            let bins = bins.unwrap();
            assert_eq!(bins.len(), 3, "padded = {padded}");
        }
    }

    #[test]
    fn the_widest_budget_packs_like_a_narrow_one() {
        let lengths = [5, 3, 2, 9, 1];
        let wide = pack_microbatches(&lengths, i64::MAX, false, None).unwrap();
        assert_eq!(wide.iter().collect::<Vec<_>>(), vec![&[0, 1, 2, 3, 4][..]]);
        let narrow = pack_microbatches(&lengths, 10, false, None).unwrap();
        assert_eq!(
            narrow.iter().collect::<Vec<_>>(),
            vec![&[3, 4][..], &[0, 1, 2][..]]
        );
    }

    #[test]
    fn prompts_padded_apart_cost_their_own_longest() {
        // Rows (prompt, rest) = (8, 1) and (1, 8): one [2, 9 + 9] input, not 2 * 9.
        let bins = pack_microbatches(&[1, 8], 20, true, Some(&[8, 1])).unwrap();
        assert_eq!(bins.len(), 2);
        let bins = pack_microbatches(&[1, 8], 36, true, Some(&[8, 1])).unwrap();
        assert_eq!(bins.iter().collect::<Vec<_>>(), vec![&[0, 1][..]]);
        let err = pack_microbatches(&[1, 8], 36, true, Some(&[8])).unwrap_err();
        assert!(err.to_string().starts_with("prompt_lengths"));
    }

    #[test]
    fn oversized_sequence_gets_its_own_microbatch() {
        let bins = pack_microbatches(&[50, 5, 5], 10, false, None).unwrap();
        assert_eq!(bins.iter().collect::<Vec<_>>(), vec![&[0][..], &[1, 2][..]]);
    }
}
