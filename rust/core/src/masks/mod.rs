//! Critic-disagreement percentile masks (arXiv 2510.01656, equation 5; step 6 of
//! `docs/algorithm.md`).
//!
//! Within a scope of `n` tokens, the `floor(low * n)` tokens of lowest critic std lose their
//! advantage (`adv_keep = false`) and the `floor(high * n)` tokens of highest std leave the
//! entropy bonus (`ent_keep = false`). Tokens are totally ordered by `(std, position)`, so ties
//! are broken by position (earlier = lower), the counts are exact, and the two sets are
//! disjoint whenever `low + high <= 1`. Selection is O(n), no sort: for a whole batch, a sample
//! brackets the two boundary values and one counting pass finds them exactly (`batch.rs`); within
//! each sequence, a histogram of the order keys finds the bins holding them (`sequence.rs`); within
//! each group (whose tokens are scattered), `select_nth_unstable` on `(order key, position)`
//! pairs. The batch and sequence scopes write both masks in one marking sweep that resolves ties
//! at a threshold by position, into outputs that need no initial value.

mod batch;
mod sequence;

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use crate::dispatch::avx2_dispatch;
use crate::error::{EngineError, Result};
use crate::real::{check_finite, check_unit_range, Real};
use crate::segments::group_members;
use crate::segments::validate_offsets;

/// Over which tokens the percentiles are counted.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// All tokens of the batch.
    Batch,
    /// Each sequence of `offsets` on its own.
    Sequence { offsets: &'a [i64] },
    /// The tokens of all sequences sharing a group id (`group_ids[n_seq]`), group by group.
    Group {
        offsets: &'a [i64],
        group_ids: &'a [i64],
    },
}

/// Fill `adv_keep` and `ent_keep` (length `T`, like `std`); see the module docs.
///
/// Errors: length mismatch, `low`/`high` outside `[0, 1]` or `low + high > 1`, invalid offsets,
/// `group_ids` not of length `n_seq`, non-finite `std`.
pub fn percentile_masks<F: Real>(
    std: &[F],
    low: f64,
    high: f64,
    scope: Scope<'_>,
    adv_keep: &mut [bool],
    ent_keep: &mut [bool],
) -> Result<()> {
    let uninit = |s: &mut [bool]| {
        // SAFETY: `MaybeUninit<bool>` has the layout of `bool`, and `percentile_masks_uninit`
        // only ever stores valid `bool`s, so the slice stays initialised.
        unsafe { &mut *(s as *mut [bool] as *mut [MaybeUninit<bool>]) }
    };
    percentile_masks_uninit(std, low, high, scope, uninit(adv_keep), uninit(ent_keep))
}

/// [`percentile_masks`] into outputs that need no initial value (e.g. fresh arrays, so that
/// nobody zero-fills what is about to be overwritten): on `Ok`, every element has been written.
pub fn percentile_masks_uninit<F: Real>(
    std: &[F],
    low: f64,
    high: f64,
    scope: Scope<'_>,
    adv_keep: &mut [MaybeUninit<bool>],
    ent_keep: &mut [MaybeUninit<bool>],
) -> Result<()> {
    let n = std.len();
    if adv_keep.len() != n || ent_keep.len() != n {
        return Err(EngineError::shape(
            "out",
            format!("length {n}"),
            adv_keep.len().min(ent_keep.len()),
        ));
    }
    check_unit_range("low", low, 0.0, 1.0)?;
    check_unit_range("high", high, 0.0, 1.0)?;
    if low + high > 1.0 {
        return Err(EngineError::range(
            "low + high",
            "at most 1 (the two masks would overlap)",
            low + high,
        ));
    }
    match scope {
        Scope::Batch => batch::mask_batch(std, low, high, adv_keep, ent_keep),
        Scope::Sequence { offsets } => {
            validate_offsets(offsets, n)?;
            sequence::mask_sequences(std, offsets, low, high, adv_keep, ent_keep)
        }
        Scope::Group { offsets, group_ids } => {
            validate_offsets(offsets, n)?;
            let n_seq = offsets.len() - 1;
            if group_ids.len() != n_seq {
                return Err(EngineError::shape(
                    "group_ids",
                    format!("length {n_seq} (one per sequence)"),
                    group_ids.len(),
                ));
            }
            check_finite("std", std)?;
            adv_keep.fill(MaybeUninit::new(true));
            ent_keep.fill(MaybeUninit::new(true));
            let groups = group_members(group_ids);
            let picked: Vec<(Vec<usize>, Vec<usize>)> = (0..groups.len())
                .into_par_iter()
                .map(|g| {
                    let members = groups.get(g);
                    let positions = members
                        .iter()
                        .flat_map(|&s| offsets[s] as usize..offsets[s + 1] as usize);
                    select_extremes(std, positions, low, high)
                })
                .collect();
            for (lows, highs) in picked {
                lows.iter().for_each(|&p| _ = adv_keep[p].write(false));
                highs.iter().for_each(|&p| _ = ent_keep[p].write(false));
            }
            Ok(())
        }
    }
}

/// `floor(frac * n)`, the exact count of masked tokens in a scope of `n`.
pub fn mask_count(frac: f64, n: usize) -> usize {
    ((frac * n as f64).floor() as usize).min(n)
}

/// One side of a mask within a scope: values strictly beyond `value` on the kept side (above it
/// for the low mask, below it for the high mask) are kept, values strictly on the other side are
/// masked, and of the values equal to it, those whose tie rank (0-based, by position within the
/// scope) falls in `masked_ties` are masked.
struct Cut<F> {
    value: F,
    masked_ties: Range<usize>,
}

impl<F: Real> Cut<F> {
    /// The side of an empty mask: `-inf` for the low side, `+inf` for the high side.
    fn keep_all(value: F) -> Self {
        Cut {
            value,
            masked_ties: 0..0,
        }
    }
}

/// Write both masks of one stretch `xs` of a scope in one sweep: `adv = x > lo`, `ent = x < hi`,
/// so every tie starts masked. A side given `Some(first)` holds kept ties; its ties are then
/// revisited in order, `first` being the tie rank of the first one in `xs`.
fn mark<F: Real>(
    adv: &mut [MaybeUninit<bool>],
    ent: &mut [MaybeUninit<bool>],
    xs: &[F],
    (lo, lo_first): (&Cut<F>, Option<usize>),
    (hi, hi_first): (&Cut<F>, Option<usize>),
) {
    compare_both(adv, ent, xs, lo.value, hi.value);
    for (out, cut, first) in [(adv, lo, lo_first), (ent, hi, hi_first)] {
        if let Some(mut rank) = first {
            for (o, &x) in out.iter_mut().zip(xs) {
                if x == cut.value {
                    o.write(!cut.masked_ties.contains(&rank));
                    rank += 1;
                }
            }
        }
    }
}

avx2_dispatch! {
    /// `adv[i] = xs[i] > lo` and `ent[i] = xs[i] < hi`, with AVX2 when the CPU has it.
    fn compare_both<F: Real>(
        adv: &mut [MaybeUninit<bool>],
        ent: &mut [MaybeUninit<bool>],
        xs: &[F],
        lo: F,
        hi: F,
    ) = compare_both_portable;
}

#[inline(always)]
fn compare_both_portable<F: Real>(
    adv: &mut [MaybeUninit<bool>],
    ent: &mut [MaybeUninit<bool>],
    xs: &[F],
    lo: F,
    hi: F,
) {
    for ((a, e), &x) in adv.iter_mut().zip(ent.iter_mut()).zip(xs) {
        a.write(x > lo);
        e.write(x < hi);
    }
}

/// Positions of the `floor(low * n)` lowest and `floor(high * n)` highest `(key, position)` among
/// `positions`. For `f32` the pair is packed into one `u64` (key in the high half), which halves
/// the memory the two `select_nth_unstable` calls move.
fn select_extremes<F: Real>(
    std: &[F],
    positions: impl Iterator<Item = usize> + Clone,
    low: f64,
    high: f64,
) -> (Vec<usize>, Vec<usize>) {
    let narrow = std::mem::size_of::<F::Key>() == 4;
    if narrow && positions.clone().all(|p| p <= u32::MAX as usize) {
        let mut keys: Vec<u64> = positions
            .map(|p| (std[p].order_key().into() << 32) | p as u64)
            .collect();
        extremes(&mut keys, low, high, |k| (k & u64::from(u32::MAX)) as usize)
    } else {
        let mut keys: Vec<(F::Key, usize)> = positions.map(|p| (std[p].order_key(), p)).collect();
        extremes(&mut keys, low, high, |k| k.1)
    }
}

fn extremes<T: Ord + Copy>(
    keys: &mut [T],
    low: f64,
    high: f64,
    position: impl Fn(T) -> usize,
) -> (Vec<usize>, Vec<usize>) {
    let n = keys.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let mut lows = Vec::new();
    if k_low > 0 {
        keys.select_nth_unstable(k_low - 1);
        lows = keys[..k_low].iter().map(|&k| position(k)).collect();
    }
    let mut highs = Vec::new();
    if k_high > 0 {
        keys.select_nth_unstable(n - k_high);
        highs = keys[n - k_high..].iter().map(|&k| position(k)).collect();
    }
    (lows, highs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: full sort by (std, position).
    fn reference(std: &[f64], low: f64, high: f64) -> (Vec<bool>, Vec<bool>) {
        let n = std.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| std[i].partial_cmp(&std[j]).unwrap().then(i.cmp(&j)));
        let (mut adv, mut ent) = (vec![true; n], vec![true; n]);
        order[..mask_count(low, n)]
            .iter()
            .for_each(|&i| adv[i] = false);
        order[n - mask_count(high, n)..]
            .iter()
            .for_each(|&i| ent[i] = false);
        (adv, ent)
    }

    fn run(std: &[f64], low: f64, high: f64, scope: Scope<'_>) -> (Vec<bool>, Vec<bool>) {
        let (mut adv, mut ent) = (vec![false; std.len()], vec![false; std.len()]);
        percentile_masks(std, low, high, scope, &mut adv, &mut ent).unwrap();
        (adv, ent)
    }

    #[test]
    fn all_equal_std_masks_by_position() {
        let (adv, ent) = run(&[0.5; 10], 0.2, 0.3, Scope::Batch);
        assert_eq!(
            adv,
            [false, false, true, true, true, true, true, true, true, true]
        );
        assert_eq!(
            ent,
            [true, true, true, true, true, true, true, false, false, false]
        );
    }

    #[test]
    fn overlapping_fractions_are_rejected() {
        let err = percentile_masks(&[1.0f32], 0.6, 0.5, Scope::Batch, &mut [true], &mut [true])
            .unwrap_err();
        assert!(err.to_string().starts_with("low + high"));
    }

    #[test]
    fn nan_std_is_rejected() {
        let err = percentile_masks(
            &[1.0f32, f32::NAN],
            0.5,
            0.0,
            Scope::Batch,
            &mut [true; 2],
            &mut [true; 2],
        );
        assert!(matches!(
            err,
            Err(EngineError::NonFinite {
                arg: "std",
                index: 1,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn batch_scope_matches_full_sort(
            raw in prop::collection::vec(0u8..8, 0..300), low in 0.0f64..0.5, high in 0.0f64..0.5,
        ) {
            // Few distinct values, so that ties at the thresholds are the common case.
            let std: Vec<f64> = raw.iter().map(|&x| x as f64 * 0.25 - 0.5).collect();
            prop_assert_eq!(run(&std, low, high, Scope::Batch), reference(&std, low, high));
            let std32: Vec<f32> = std.iter().map(|&x| x as f32).collect();
            let (mut adv, mut ent) = (vec![false; std.len()], vec![false; std.len()]);
            percentile_masks(&std32, low, high, Scope::Batch, &mut adv, &mut ent).unwrap();
            prop_assert_eq!((adv, ent), reference(&std, low, high));
        }

        #[test]
        fn sequence_and_group_scopes_match_per_segment_sort(
            lens in prop::collection::vec(0usize..30, 1..10), groups in prop::collection::vec(0i64..3, 10),
            seed in any::<u64>(), low in 0.0f64..0.5, high in 0.0f64..0.5,
        ) {
            let mut offsets = vec![0i64];
            for l in &lens { offsets.push(offsets.last().unwrap() + *l as i64); }
            let n = *offsets.last().unwrap() as usize;
            let mut rng = crate::rng::SplitMix64::new(seed);
            let std: Vec<f64> = (0..n).map(|_| rng.below(4) as f64).collect();
            let group_ids = &groups[..lens.len()];
            let (adv, ent) = run(&std, low, high, Scope::Sequence { offsets: &offsets });
            let std32: Vec<f32> = std.iter().map(|&x| x as f32).collect();
            let (mut adv32, mut ent32) = (vec![false; n], vec![false; n]);
            percentile_masks(&std32, low, high, Scope::Sequence { offsets: &offsets }, &mut adv32, &mut ent32).unwrap();
            prop_assert_eq!((&adv32, &ent32), (&adv, &ent));
            for w in offsets.windows(2) {
                let (a, b) = (w[0] as usize, w[1] as usize);
                let (ra, re) = reference(&std[a..b], low, high);
                prop_assert_eq!(&adv[a..b], &ra[..]);
                prop_assert_eq!(&ent[a..b], &re[..]);
            }
            let (adv, ent) = run(&std, low, high, Scope::Group { offsets: &offsets, group_ids });
            for members in group_members(group_ids).iter() {
                let pos: Vec<usize> = members.iter().flat_map(|&s| offsets[s] as usize..offsets[s + 1] as usize).collect();
                let sub: Vec<f64> = pos.iter().map(|&p| std[p]).collect();
                let (ra, re) = reference(&sub, low, high);
                for (j, &p) in pos.iter().enumerate() {
                    prop_assert_eq!(adv[p], ra[j]);
                    prop_assert_eq!(ent[p], re[j]);
                }
            }
        }
    }

    #[test]
    fn sample_blind_to_the_tail_still_gives_exact_masks() {
        // The strided sample sees only even positions (all 0.0), so the high bracket misses.
        let std: Vec<f64> = (0..4 * batch::SAMPLE)
            .map(|i| {
                if i % 2 == 0 {
                    0.0
                } else {
                    1.0 + (i % 7) as f64
                }
            })
            .collect();
        assert_eq!(run(&std, 0.3, 0.3, Scope::Batch), reference(&std, 0.3, 0.3));
    }

    #[test]
    fn large_batch_with_ties_across_chunks_matches_full_sort() {
        let mut rng = crate::rng::SplitMix64::new(9);
        for distinct in [1usize, 7, 1000, 1 << 30] {
            let std: Vec<f64> = (0..300_000)
                .map(|_| rng.below(distinct) as f64 * 1e-3)
                .collect();
            assert_eq!(
                run(&std, 0.2, 0.3, Scope::Batch),
                reference(&std, 0.2, 0.3),
                "{distinct} distinct"
            );
        }
    }

    #[test]
    fn long_sequences_of_mixed_sign_values_match_per_segment_sort() {
        // Negative values, both zeros and wide magnitudes exercise the key histogram's range.
        let mut rng = crate::rng::SplitMix64::new(5);
        let mut offsets = vec![0i64];
        for len in [1usize, 2, 9000, 3, 5000, 0, 4096] {
            offsets.push(offsets.last().unwrap() + len as i64);
        }
        let n = *offsets.last().unwrap() as usize;
        let std: Vec<f64> = (0..n)
            .map(|i| match rng.below(5) {
                0 => 0.0,
                1 => -0.0,
                2 => -(rng.below(1000) as f64) * 1e-3,
                _ => (rng.below(1 << 20) as f64).powi(3) * 1e-12 + i as f64 * 1e-9,
            })
            .collect();
        let (adv, ent) = run(&std, 0.3, 0.25, Scope::Sequence { offsets: &offsets });
        for w in offsets.windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            let (ra, re) = reference(&std[a..b], 0.3, 0.25);
            assert_eq!(&adv[a..b], &ra[..]);
            assert_eq!(&ent[a..b], &re[..]);
        }
    }

    #[test]
    fn nan_in_a_sequence_is_rejected_at_its_batch_index() {
        let std = [0.5f32, 1.0, 2.0, f32::NAN, 1.0];
        let offsets = [0i64, 2, 5];
        let err = percentile_masks(
            &std,
            0.2,
            0.2,
            Scope::Sequence { offsets: &offsets },
            &mut [true; 5],
            &mut [true; 5],
        );
        assert!(matches!(
            err,
            Err(EngineError::NonFinite {
                arg: "std",
                index: 3,
                ..
            })
        ));
    }
}
