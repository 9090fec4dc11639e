//! Critic-disagreement percentile masks (AsyPPO §3 step 6).
//!
//! Within a scope of `n` tokens, the `floor(low * n)` tokens of lowest critic std lose their
//! advantage (`adv_keep = false`) and the `floor(high * n)` tokens of highest std leave the
//! entropy bonus (`ent_keep = false`). Tokens are totally ordered by `(std, position)`, so ties
//! are broken by position (earlier = lower), the counts are exact, and the two sets are
//! disjoint whenever `low + high <= 1`. Selection is O(n): a 16-bit-digit radix select over the
//! order-preserving integer keys of the floats for a whole batch, `select_nth_unstable` within
//! sequences and groups.

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, check_unit_range, Real};
use crate::segments::{split_at_bounds, task_bounds, validate_offsets};
use crate::shard::group_members;

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
    adv_keep.fill(true);
    ent_keep.fill(true);
    match scope {
        Scope::Batch => mask_batch(std, low, high, adv_keep, ent_keep),
        Scope::Sequence { offsets } => {
            validate_offsets(offsets, n)?;
            check_finite("std", std)?;
            let bounds = task_bounds(offsets);
            let adv_parts = split_at_bounds(adv_keep, offsets, &bounds);
            let ent_parts = split_at_bounds(ent_keep, offsets, &bounds);
            adv_parts
                .into_par_iter()
                .zip(ent_parts)
                .zip(bounds.par_windows(2))
                .for_each(|((adv, ent), w)| {
                    let base = offsets[w[0]] as usize;
                    let mut keys = Vec::new();
                    for s in w[0]..w[1] {
                        let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
                        let (lows, highs) = select_extremes(std, a..b, low, high, &mut keys);
                        lows.iter().for_each(|&p| adv[p - base] = false);
                        highs.iter().for_each(|&p| ent[p - base] = false);
                    }
                });
            Ok(())
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
            let picked: Vec<(Vec<usize>, Vec<usize>)> = group_members(group_ids)
                .into_par_iter()
                .map(|members| {
                    let positions = members
                        .iter()
                        .flat_map(|&s| offsets[s] as usize..offsets[s + 1] as usize);
                    let (lows, highs) = select_extremes(std, positions, low, high, &mut Vec::new());
                    (lows.to_vec(), highs.to_vec())
                })
                .collect();
            for (lows, highs) in picked {
                lows.iter().for_each(|&p| adv_keep[p] = false);
                highs.iter().for_each(|&p| ent_keep[p] = false);
            }
            Ok(())
        }
    }
}

/// `floor(frac * n)`, the exact count of masked tokens in a scope of `n`.
pub fn mask_count(frac: f64, n: usize) -> usize {
    ((frac * n as f64).floor() as usize).min(n)
}

/// Positions of the `floor(low * n)` lowest and `floor(high * n)` highest `(key, position)` among
/// `positions`, by two `select_nth_unstable` calls on `keys` (a reusable buffer).
fn select_extremes<F: Real>(
    std: &[F],
    positions: impl Iterator<Item = usize>,
    low: f64,
    high: f64,
    keys: &mut Vec<(u64, usize)>,
) -> (Vec<usize>, Vec<usize>) {
    keys.clear();
    keys.extend(positions.map(|p| (std[p].order_key(), p)));
    let n = keys.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let mut lows = Vec::new();
    if k_low > 0 {
        keys.select_nth_unstable(k_low - 1);
        lows = keys[..k_low].iter().map(|&(_, p)| p).collect();
    }
    let mut highs = Vec::new();
    if k_high > 0 {
        keys.select_nth_unstable(n - k_high);
        highs = keys[n - k_high..].iter().map(|&(_, p)| p).collect();
    }
    (lows, highs)
}

const DIGIT_BITS: u32 = 16;
const BINS: usize = 1 << DIGIT_BITS;
const CHUNK: usize = 1 << 16;

/// Counts of the digit `(key >> shift) & 0xFFFF` over the keys whose higher bits equal `prefix`,
/// and whether every value was finite.
fn digit_histogram<F: Real>(std: &[F], shift: u32, prefix: u64) -> (Vec<u64>, bool) {
    let prefix_shift = shift + DIGIT_BITS;
    let fresh = || (vec![0u64; BINS], true);
    std.par_chunks(CHUNK.max(std.len() / rayon::current_num_threads() + 1))
        .fold(fresh, |(mut hist, mut finite), chunk| {
            for &x in chunk {
                finite &= x.is_finite();
                let key = x.order_key();
                if key.checked_shr(prefix_shift).unwrap_or(0) == prefix {
                    hist[((key >> shift) as usize) & (BINS - 1)] += 1;
                }
            }
            (hist, finite)
        })
        .reduce(fresh, |(mut a, fa), (b, fb)| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            (a, fa & fb)
        })
}

/// The key of rank `rank` (0-based) in `(key)` order and the number of keys strictly below it,
/// by one histogram pass per 16-bit digit below the top one (`top` is the top digit's histogram).
fn key_of_rank<F: Real>(std: &[F], rank: usize, top: &[u64]) -> (u64, usize) {
    let (mut prefix, mut below) = (0u64, 0usize);
    let mut shift = F::KEY_BITS;
    let mut owned;
    let mut hist = top;
    loop {
        shift -= DIGIT_BITS;
        let mut need = (rank - below) as u64;
        let mut digit = 0;
        while need >= hist[digit] {
            need -= hist[digit];
            below += hist[digit] as usize;
            digit += 1;
        }
        prefix = (prefix << DIGIT_BITS) | digit as u64;
        if shift == 0 {
            return (prefix, below);
        }
        owned = digit_histogram(std, shift - DIGIT_BITS, prefix).0;
        hist = &owned;
    }
}

fn mask_batch<F: Real>(
    std: &[F],
    low: f64,
    high: f64,
    adv_keep: &mut [bool],
    ent_keep: &mut [bool],
) -> Result<()> {
    let n = std.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let (top, finite) = digit_histogram(std, F::KEY_BITS - DIGIT_BITS, 0);
    if !finite {
        check_finite("std", std)?;
    }
    if k_low == 0 && k_high == 0 {
        return Ok(());
    }
    // Threshold keys; a tie at the threshold is resolved by position through `skip`/`take`.
    // Low side: keys < key_lo, plus the first `take_lo` keys equal to key_lo.
    // High side: keys > key_hi, plus the keys equal to key_hi from the `skip_hi`-th on.
    let (key_lo, take_lo) = match k_low {
        0 => (0, 0),
        k => {
            let (key, below) = key_of_rank(std, k - 1, &top);
            (key, k - below)
        }
    };
    let (key_hi, skip_hi) = match k_high {
        0 => (u64::MAX, usize::MAX),
        k => {
            let (key, below) = key_of_rank(std, n - k, &top);
            (key, n - k - below)
        }
    };
    let chunk = CHUNK.max(n / (4 * rayon::current_num_threads()) + 1);
    let ties: Vec<(usize, usize)> = std
        .par_chunks(chunk)
        .map(|c| {
            c.iter().fold((0, 0), |(lo, hi), x| {
                let key = x.order_key();
                (lo + (key == key_lo) as usize, hi + (key == key_hi) as usize)
            })
        })
        .collect();
    let mut starts = Vec::with_capacity(ties.len());
    let (mut lo, mut hi) = (0, 0);
    for (a, b) in ties {
        starts.push((lo, hi));
        lo += a;
        hi += b;
    }
    adv_keep
        .par_chunks_mut(chunk)
        .zip(ent_keep.par_chunks_mut(chunk))
        .zip(std.par_chunks(chunk))
        .zip(starts)
        .for_each(|(((adv, ent), xs), (mut tie_lo, mut tie_hi))| {
            for ((a, e), x) in adv.iter_mut().zip(ent.iter_mut()).zip(xs) {
                let key = x.order_key();
                if k_low > 0 {
                    if key == key_lo {
                        *a = tie_lo >= take_lo;
                        tie_lo += 1;
                    } else {
                        *a = key > key_lo;
                    }
                }
                if k_high > 0 {
                    if key == key_hi {
                        *e = tie_hi < skip_hi;
                        tie_hi += 1;
                    } else {
                        *e = key < key_hi;
                    }
                }
            }
        });
    Ok(())
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
            for w in offsets.windows(2) {
                let (a, b) = (w[0] as usize, w[1] as usize);
                let (ra, re) = reference(&std[a..b], low, high);
                prop_assert_eq!(&adv[a..b], &ra[..]);
                prop_assert_eq!(&ent[a..b], &re[..]);
            }
            let (adv, ent) = run(&std, low, high, Scope::Group { offsets: &offsets, group_ids });
            for members in group_members(group_ids) {
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
    fn large_batch_has_exact_counts() {
        let mut rng = crate::rng::SplitMix64::new(9);
        let std: Vec<f32> = (0..300_000)
            .map(|_| (rng.below(1000) as f32) * 1e-3)
            .collect();
        let (mut adv, mut ent) = (vec![true; std.len()], vec![true; std.len()]);
        percentile_masks(&std, 0.2, 0.2, Scope::Batch, &mut adv, &mut ent).unwrap();
        assert_eq!(adv.iter().filter(|&&k| !k).count(), 60_000);
        assert_eq!(ent.iter().filter(|&&k| !k).count(), 60_000);
        let max_masked = std
            .iter()
            .zip(&adv)
            .filter(|(_, &k)| !k)
            .map(|(s, _)| *s)
            .fold(f32::MIN, f32::max);
        let min_kept = std
            .iter()
            .zip(&adv)
            .filter(|(_, &k)| k)
            .map(|(s, _)| *s)
            .fold(f32::MAX, f32::min);
        assert!(max_masked <= min_kept);
    }
}
