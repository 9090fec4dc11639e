//! Sequence scope of the percentile masks: the batch algorithm run on each sequence, with the
//! brackets of the boundary ranks read off a histogram of the sequence instead of a sample
//! (a sequence of a few thousand tokens is too short for a sample to bracket them narrowly).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::batch::{boundary_ranks, exact_cuts, Bracket};
use super::{mark, mask_count};
use crate::error::Result;
use crate::real::{check_finite, Real};
use crate::segments::{split_at_bounds, task_bounds};

/// The histogram of a sequence's order keys has at most `2^BIN_BITS` bins.
const BIN_BITS: u32 = 10;

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

/// Write both masks of one sequence `xs`; `false` (and nothing written) if a value is not
/// finite. Built for AVX2 as well, chosen at run time.
fn mask_sequence<F: Real>(
    xs: &[F],
    low: f64,
    high: f64,
    scratch: &mut Scratch,
    adv: &mut [MaybeUninit<bool>],
    ent: &mut [MaybeUninit<bool>],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { mask_sequence_avx2(xs, low, high, scratch, adv, ent) };
    }
    mask_sequence_portable(xs, low, high, scratch, adv, ent)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_sequence_avx2<F: Real>(
    xs: &[F],
    low: f64,
    high: f64,
    scratch: &mut Scratch,
    adv: &mut [MaybeUninit<bool>],
    ent: &mut [MaybeUninit<bool>],
) -> bool {
    mask_sequence_portable(xs, low, high, scratch, adv, ent)
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
    // Integer min and max of the order keys (they vectorise; float ones would not, for NaN
    // semantics). NaN and +-inf have the extreme keys, so these also tell finiteness.
    let keys = || xs.iter().map(|x| x.order_key());
    let (Some(min), Some(max)) = (keys().min(), keys().max()) else {
        return true; // an empty sequence
    };
    if !(F::from_order_key(min).is_finite() && F::from_order_key(max).is_finite()) {
        return false;
    }
    let n = xs.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let ranks = boundary_ranks(n, k_low, k_high);
    let brackets = histogram_brackets(xs, (min.into(), max.into()), ranks, scratch);
    let cuts = exact_cuts(xs, n.max(1), k_low, k_high, brackets).expect("finite (checked above)");
    let first = |fix: &[Option<usize>]| fix.first().copied().flatten();
    mark(
        adv,
        ent,
        xs,
        (&cuts.lo, first(&cuts.fix_lo)),
        (&cuts.hi, first(&cuts.fix_hi)),
    );
    true
}

/// Reusable buffers of [`histogram_brackets`].
#[derive(Default)]
struct Scratch {
    bins: Vec<u32>,
    counts: Vec<u32>,
}

/// Brackets holding the boundary ranks of the finite values `xs` whose order keys span
/// `[min, max]`: a histogram of the keys in at most `2^BIN_BITS` bins of a power-of-two width (a bin index is a
/// subtraction and a shift), and for each rank the smallest and largest key of its bin.
#[inline(always)]
fn histogram_brackets<F: Real>(
    xs: &[F],
    (min, max): (u64, u64),
    ranks: [Option<usize>; 2],
    scratch: &mut Scratch,
) -> [Option<Bracket<F>>; 2] {
    if ranks.iter().all(Option::is_none) {
        return [None, None];
    }
    let shift = (u64::BITS - (max - min).leading_zeros()).saturating_sub(BIN_BITS);
    let Scratch { bins, counts } = scratch;
    // Bin indices in a vectorised pass, so that the scattered increments are all that is left
    // to the scalar loop.
    bins.clear();
    bins.extend(
        xs.iter()
            .map(|x| ((x.order_key().into() - min) >> shift) as u32),
    );
    counts.clear();
    counts.resize(((max - min) >> shift) as usize + 1, 0);
    for &b in bins.iter() {
        counts[b as usize] += 1;
    }
    // Every key in `[min, max]` is the key of a finite value.
    let value =
        |key: u64| F::from_order_key(F::Key::try_from(key).unwrap_or_else(|_| unreachable!()));
    ranks.map(|rank| {
        let rank = rank?;
        let mut seen = 0;
        let bin = counts.iter().position(|&c| {
            seen += c as usize;
            seen > rank
        })?;
        let first = min + ((bin as u64) << shift);
        Some(Bracket {
            rank,
            a: value(first),
            b: value(max.min(first + (1 << shift) - 1)),
        })
    })
}
