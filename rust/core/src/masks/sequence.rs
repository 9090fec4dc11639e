//! Sequence scope of the percentile masks. Per sequence (a few thousand tokens, in cache): a
//! histogram of the order keys finds the bin holding each boundary rank, one pass gathers the
//! keys of those two bins, `select_nth_unstable` among them gives the exact thresholds, and one
//! [`mark`] sweep writes both masks. (A sample, as the batch scope uses, would be too small to
//! bracket the ranks narrowly in so short a scope.)

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::batch::boundary_ranks;
use super::{mark, mask_count, Cut};
use crate::dispatch::avx2_dispatch;
use crate::error::Result;
use crate::real::{check_finite, Real};
use crate::segments::{split_at_bounds, task_bounds};

/// The histogram of a sequence's order keys has at most `2^BIN_BITS` bins.
const BIN_BITS: u32 = 10;
/// Values tested side by side in the gathering pass.
const LANES: usize = 8;

/// Write every element of `adv_keep` and `ent_keep`, sequence by sequence of `offsets` (valid):
/// each rayon task takes a run of sequences and one reusable histogram.
pub(super) fn mask_sequences<F: Real>(
    std: &[F],
    offsets: &[i64],
    low: f64,
    high: f64,
    adv_keep: &mut [MaybeUninit<bool>],
    ent_keep: &mut [MaybeUninit<bool>],
) -> Result<()> {
    let bounds = task_bounds(offsets);
    let adv_parts = split_at_bounds(adv_keep, offsets, &bounds);
    let ent_parts = split_at_bounds(ent_keep, offsets, &bounds);
    let finite = adv_parts
        .into_par_iter()
        .zip(ent_parts)
        .zip(bounds.par_windows(2))
        .map(|((adv, ent), w)| {
            let base = offsets[w[0]] as usize;
            let mut scratch = Scratch::default();
            (w[0]..w[1]).all(|s| {
                let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
                let (adv, ent) = (&mut adv[a - base..b - base], &mut ent[a - base..b - base]);
                mask_sequence(&std[a..b], low, high, &mut scratch, adv, ent)
            })
        })
        .reduce(|| true, |a, b| a & b);
    if finite {
        Ok(())
    } else {
        check_finite("std", std)
    }
}

avx2_dispatch! {
    /// Write both masks of one sequence `xs`; `false` (and nothing written) if a value is not
    /// finite. Built for AVX2 as well, chosen at run time.
    fn mask_sequence<F: Real>(
        xs: &[F],
        low: f64,
        high: f64,
        scratch: &mut Scratch,
        adv: &mut [MaybeUninit<bool>],
        ent: &mut [MaybeUninit<bool>],
    ) -> bool = mask_sequence_portable;
}

#[inline(always)]
fn mask_sequence_portable<F: Real>(
    xs: &[F],
    low: f64,
    high: f64,
    scratch: &mut Scratch,
    adv: &mut [MaybeUninit<bool>],
    ent: &mut [MaybeUninit<bool>],
) -> bool {
    let Some((min, max)) = key_range(xs) else {
        return true; // an empty sequence
    };
    // NaN and +-inf have the extreme keys, so the range also tells finiteness.
    if !(F::from_order_key(min).is_finite() && F::from_order_key(max).is_finite()) {
        return false;
    }
    let n = xs.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let [lo, hi] = sequence_cuts(xs, (min, max), k_low, k_high, scratch);
    mark(adv, ent, xs, (&lo.0, lo.1), (&hi.0, hi.1));
    true
}

/// The smallest and largest order key of `xs` (`None` if empty), in one pass (integer minima
/// and maxima vectorise; float ones would not, for NaN semantics).
#[inline(always)]
fn key_range<F: Real>(xs: &[F]) -> Option<(F::Key, F::Key)> {
    let first = xs.first()?.order_key();
    Some(xs.iter().fold((first, first), |(lo, hi), x| {
        let key = x.order_key();
        (lo.min(key), hi.max(key))
    }))
}

/// The index in `counts` (bins in the order given) of the bin that holds the value of 0-based
/// rank `rank`, and how many values the bins before it hold. `rank` is below the counts' sum.
fn bin_of_rank<'a>(counts: impl Iterator<Item = &'a u32>, rank: usize) -> (usize, usize) {
    let mut before = 0;
    for (i, &c) in counts.enumerate() {
        if before + c as usize > rank {
            return (i, before);
        }
        before += c as usize;
    }
    unreachable!("a rank below the number of values")
}

/// Reusable buffers of [`sequence_cuts`].
#[derive(Default)]
struct Scratch {
    bins: Vec<u32>,
    counts: Vec<u32>,
    picked: [Vec<u64>; 2],
}

/// Both cuts of the finite sequence `xs` whose order keys span `[min, max]`, each with the tie
/// rank to pass to [`mark`] (`Some(0)` when some of its ties are kept).
///
/// The histogram has at most `2^BIN_BITS` bins of a power-of-two width over `[min, max]`, so a
/// bin index is a subtraction and a shift; the bin indices are computed in a vectorised pass,
/// which leaves only the scattered increments to a scalar loop.
#[inline(always)]
fn sequence_cuts<F: Real>(
    xs: &[F],
    (min, max): (F::Key, F::Key),
    k_low: usize,
    k_high: usize,
    scratch: &mut Scratch,
) -> [(Cut<F>, Option<usize>); 2] {
    let n = xs.len();
    let mut cuts = [
        (Cut::keep_all(-F::INFINITY), None),
        (Cut::keep_all(F::INFINITY), None),
    ];
    if k_low == 0 && k_high == 0 {
        return cuts;
    }
    let Scratch {
        bins,
        counts,
        picked,
    } = scratch;
    let range: u64 = (max - min).into();
    let shift = (u64::BITS - range.leading_zeros()).saturating_sub(BIN_BITS);
    // In the key's own width, so that `f32` keys fill 8 lanes of a vector register.
    let bin = |x: F| ((x.order_key() - min) >> shift).into() as u32;
    bins.clear();
    bins.extend(xs.iter().map(|&x| bin(x)));
    counts.clear();
    counts.resize((range >> shift) as usize + 1, 0);
    let tally = &mut counts[..];
    for &b in bins.iter() {
        tally[b as usize] += 1;
    }
    // Per side: the boundary rank, the bin holding it and how many keys lie in earlier bins.
    // The low side is found from the bottom bin up, the high side from the top bin down, so
    // the two scans together visit each bin at most once.
    let [rank_lo, rank_hi] = boundary_ranks(n, k_low, k_high);
    let located = [
        rank_lo.map(|rank| {
            let (bin, below) = bin_of_rank(counts.iter(), rank);
            (rank, bin as u32, below)
        }),
        rank_hi.map(|rank| {
            let (from_top, above) = bin_of_rank(counts.iter().rev(), n - 1 - rank);
            let bin = counts.len() - 1 - from_top;
            (rank, bin as u32, n - above - counts[bin] as usize)
        }),
    ];
    // One pass gathers the keys of both bins (`u32::MAX` is no bin): per group of `LANES`
    // values, one vectorised test whether any falls in either bin; the few groups that have
    // one (a few percent) are then visited value by value.
    let target = located.map(|l| l.map_or(u32::MAX, |l| l.1));
    picked.iter_mut().for_each(Vec::clear);
    let mut gather = |bs: &[u32], g: &[F]| {
        for (&b, &x) in bs.iter().zip(g) {
            for side in 0..2 {
                if b == target[side] {
                    picked[side].push(x.order_key().into());
                }
            }
        }
    };
    let (groups, rest) = bins.as_chunks::<LANES>();
    for (bs, g) in groups.iter().zip(xs.chunks_exact(LANES)) {
        let hit = bs.map(|b| (b == target[0]) | (b == target[1]));
        if hit.iter().fold(false, |any, &h| any | h) {
            gather(bs, g);
        }
    }
    gather(rest, &xs[groups.len() * LANES..]);
    // Every key in `[min, max]` is the key of a finite value.
    let value =
        |key: u64| F::from_order_key(F::Key::try_from(key).unwrap_or_else(|_| unreachable!()));
    for (side, keys) in picked.iter_mut().enumerate() {
        let Some((rank, _, before)) = located[side] else {
            continue;
        };
        let (smaller, &mut t, _) = keys.select_nth_unstable(rank - before);
        let below = before + smaller.iter().filter(|&&k| k < t).count();
        let ties = keys.iter().filter(|&&k| k == t).count();
        cuts[side] = if side == 0 {
            // The first `k_low - below` ties are masked, any after them kept.
            let masked = k_low - below;
            let cut = Cut {
                value: value(t),
                masked_ties: 0..masked,
            };
            (cut, (ties > masked).then_some(0))
        } else {
            // The ties from rank `n - k_high - below` on are masked, any before them kept.
            let first_masked = n - k_high - below;
            let cut = Cut {
                value: value(t),
                masked_ties: first_masked..usize::MAX,
            };
            (cut, (first_masked > 0).then_some(0))
        };
    }
    cuts
}
