//! Critic-disagreement percentile masks (AsyPPO §3 step 6).
//!
//! Within a scope of `n` tokens, the `floor(low * n)` tokens of lowest critic std lose their
//! advantage (`adv_keep = false`) and the `floor(high * n)` tokens of highest std leave the
//! entropy bonus (`ent_keep = false`). Tokens are totally ordered by `(std, position)`, so ties
//! are broken by position (earlier = lower), the counts are exact, and the two sets are
//! disjoint whenever `low + high <= 1`. Selection is O(n): for a whole batch, a sample brackets
//! the boundary values, one counting pass gathers the values inside the brackets, and an exact
//! selection among those finds the thresholds; within sequences and groups,
//! `select_nth_unstable` on `(order key, position)` pairs.

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
    if !matches!(scope, Scope::Batch) {
        adv_keep.fill(true);
        ent_keep.fill(true);
    }
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
                    for s in w[0]..w[1] {
                        let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
                        let (lows, highs) = select_extremes(std, a..b, low, high);
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
                    let (lows, highs) = select_extremes(std, positions, low, high);
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
/// `positions`. For `f32` the pair is packed into one `u64` (key in the high half), which halves
/// the memory the two `select_nth_unstable` calls move.
fn select_extremes<F: Real>(
    std: &[F],
    positions: impl Iterator<Item = usize> + Clone,
    low: f64,
    high: f64,
) -> (Vec<usize>, Vec<usize>) {
    if F::KEY_BITS == 32 && positions.clone().all(|p| p <= u32::MAX as usize) {
        let mut keys: Vec<u64> = positions
            .map(|p| (std[p].order_key() << 32) | p as u64)
            .collect();
        extremes(&mut keys, low, high, |k| (k & u64::from(u32::MAX)) as usize)
    } else {
        let mut keys: Vec<(u64, usize)> = positions.map(|p| (std[p].order_key(), p)).collect();
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

const CHUNK: usize = 1 << 16;
const BLOCK: usize = 32;
const SAMPLE: usize = 1 << 14;

/// Values `a <= b` expected to bracket the value of boundary rank `rank`; `-inf`/`+inf` when
/// open on that side.
#[derive(Clone, Copy)]
struct Bracket<F> {
    rank: usize,
    a: F,
    b: F,
}

/// One chunk's values relative to a bracket: counts below `a`, equal to `a`, equal to `b`
/// (when `b != a`), and the values strictly inside.
struct Tally<F> {
    below: usize,
    at_a: usize,
    at_b: usize,
    inside: Vec<F>,
}

/// The exact value at the boundary rank of one side of a batch mask, how many values lie
/// strictly below it, and how many equal it in each chunk.
struct Threshold<F> {
    value: F,
    below: usize,
    ties: Vec<usize>,
}

/// Brackets for the boundary ranks from a strided sample of `SAMPLE` values: the sample order
/// statistics about 4 standard deviations of the sample rank on either side of the target.
fn sample_brackets<F: Real>(std: &[F], ranks: &[usize]) -> Vec<Bracket<F>> {
    let n = std.len();
    let s = n.min(SAMPLE);
    let mut sample: Vec<(u64, F)> = (0..s)
        .map(|i| std[i * n / s])
        .map(|x| (x.order_key(), x))
        .collect();
    let mut at = |r: usize| *sample.select_nth_unstable_by_key(r, |p| p.0).1;
    let (neg, pos) = (F::from_f64(f64::NEG_INFINITY), F::from_f64(f64::INFINITY));
    ranks
        .iter()
        .map(|&rank| {
            let p = rank as f64 / n as f64;
            let centre = (p * s as f64) as usize;
            let d = (4.0 * (s as f64 * p * (1.0 - p)).sqrt()) as usize + 8;
            let a = if centre >= d { at(centre - d).1 } else { neg };
            let b = if centre + d < s {
                at(centre + d).1
            } else {
                pos
            };
            Bracket { rank, a, b }
        })
        .collect()
}

/// Tally a chunk against both brackets, and check finiteness, in one branch-free (vectorised)
/// counting loop per block of `BLOCK` values; a block holding inside values is then compacted.
fn tally_chunk<F: Real>(xs: &[F], br: &[Bracket<F>; 2]) -> (bool, [Tally<F>; 2]) {
    let empty = || Tally {
        below: 0,
        at_a: 0,
        at_b: 0,
        inside: Vec::new(),
    };
    let mut tallies = [empty(), empty()];
    let mut finite = true;
    let (a, b) = ([br[0].a, br[1].a], [br[0].b, br[1].b]);
    let distinct = [a[0] != b[0], a[1] != b[1]];
    for block in xs.chunks(BLOCK) {
        let (mut below, mut at_a, mut at_b, mut inside) =
            ([0u32; 2], [0u32; 2], [0u32; 2], [0u32; 2]);
        for &x in block {
            finite &= x.is_finite();
            for j in 0..2 {
                below[j] += (x < a[j]) as u32;
                at_a[j] += (x == a[j]) as u32;
                at_b[j] += (distinct[j] & (x == b[j])) as u32;
                inside[j] += ((x > a[j]) & (x < b[j])) as u32;
            }
        }
        for (j, t) in tallies.iter_mut().enumerate() {
            t.below += below[j] as usize;
            t.at_a += at_a[j] as usize;
            t.at_b += at_b[j] as usize;
            if inside[j] > 0 {
                // Branch-free compaction: inside values are too common for branch prediction.
                let mut kept = [F::ZERO; BLOCK];
                let mut k = 0;
                for &x in block {
                    kept[k] = x;
                    k += ((x > a[j]) & (x < b[j])) as usize;
                }
                t.inside.extend_from_slice(&kept[..k]);
            }
        }
    }
    (finite, tallies)
}

/// The threshold of bracket `side` from the chunks' tallies, or `None` if the bracket missed
/// the boundary rank.
fn resolve<F: Real>(
    tallies: &[[Tally<F>; 2]],
    side: usize,
    br: &Bracket<F>,
) -> Option<Threshold<F>> {
    let sum = |f: &dyn Fn(&Tally<F>) -> usize| tallies.iter().map(|t| f(&t[side])).sum::<usize>();
    let (below, at_a, at_b) = (sum(&|t| t.below), sum(&|t| t.at_a), sum(&|t| t.at_b));
    let inside = sum(&|t| t.inside.len());
    let r = br.rank.checked_sub(below)?;
    if r < at_a {
        let ties = tallies.iter().map(|t| t[side].at_a).collect();
        return Some(Threshold {
            value: br.a,
            below,
            ties,
        });
    }
    let r = r - at_a;
    if r < inside {
        let mut values: Vec<F> = tallies
            .iter()
            .flat_map(|t| t[side].inside.iter().copied())
            .collect();
        let cmp = |x: &F, y: &F| x.partial_cmp(y).expect("finite values compare");
        let value = *values.select_nth_unstable_by(r, cmp).1;
        let below = below + at_a + values.iter().filter(|&&v| v < value).count();
        let ties = tallies
            .iter()
            .map(|t| t[side].inside.iter().filter(|&&v| v == value).count())
            .collect();
        return Some(Threshold { value, below, ties });
    }
    (r - inside < at_b).then(|| Threshold {
        value: br.b,
        below: below + at_a + inside,
        ties: tallies.iter().map(|t| t[side].at_b).collect(),
    })
}

/// Batch scope in two parallel passes over `std`. A strided sample brackets the values at the
/// two boundary ranks; pass 1 counts, per chunk, the values below / at / inside each bracket
/// (gathering the few inside) and checks finiteness; the exact boundary values then come from
/// `select_nth_unstable` on the gathered values (a bracket that missed, which only an
/// adversarial order can cause, is widened to everything and pass 1 rerun: exact either way).
/// Pass 2 writes `adv_keep = std > t_low` and `ent_keep = std < t_high` and, only in chunks that
/// hold values tied with a threshold, resolves those ties by position from the per-chunk tie
/// counts. Float comparisons treat `-0.0 == 0.0`, as [`Real::order_key`] does for other scopes.
fn mask_batch<F: Real>(
    std: &[F],
    low: f64,
    high: f64,
    adv_keep: &mut [bool],
    ent_keep: &mut [bool],
) -> Result<()> {
    let n = std.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let chunk = CHUNK.max(n / (4 * rayon::current_num_threads()) + 1);
    // Boundary ranks (0-based, in (std, position) order): the last low-masked, the first high-masked.
    let ranks: Vec<usize> = [k_low.checked_sub(1), (k_high > 0).then(|| n - k_high)]
        .into_iter()
        .flatten()
        .collect();
    // Both sides are always tallied; a missing side gets a bracket that gathers nothing.
    let sampled = sample_brackets(std, &ranks);
    let unused = Bracket {
        rank: 0,
        a: F::from_f64(f64::INFINITY),
        b: F::from_f64(f64::INFINITY),
    };
    let mut brackets = [
        sampled.first().copied().unwrap_or(unused),
        sampled.get(1).copied().unwrap_or(unused),
    ];
    let mut found: Vec<Option<Threshold<F>>>;
    loop {
        let (finite, tallies): (Vec<bool>, Vec<[Tally<F>; 2]>) = std
            .par_chunks(chunk)
            .map(|xs| tally_chunk(xs, &brackets))
            .unzip();
        if !finite.iter().all(|&f| f) {
            check_finite("std", std)?;
        }
        found = brackets
            .iter()
            .take(ranks.len())
            .enumerate()
            .map(|(i, br)| resolve(&tallies, i, br))
            .collect();
        if found.iter().all(Option::is_some) {
            break;
        }
        for (br, t) in brackets.iter_mut().zip(&found) {
            if t.is_none() {
                (br.a, br.b) = (F::from_f64(f64::NEG_INFINITY), F::from_f64(f64::INFINITY));
            }
        }
    }
    let mut found = found.into_iter().flatten();
    let t_lo = if k_low > 0 { found.next() } else { None };
    let t_hi = if k_high > 0 { found.next() } else { None };
    // Per chunk: (rank among the ties of the chunk's first tie, number of ties in the chunk).
    let firsts = |t: &Option<Threshold<F>>| -> Vec<(usize, usize)> {
        let n_chunks = n.div_ceil(chunk);
        let mut seen = 0;
        (0..n_chunks)
            .map(|c| {
                let here = t.as_ref().map_or(0, |t| t.ties[c]);
                seen += here;
                (seen - here, here)
            })
            .collect()
    };
    let (ties_lo, ties_hi) = (firsts(&t_lo), firsts(&t_hi));
    // Tie ranks (0-based among the values equal to a threshold) that are masked: the first
    // `k_low - below` on the low side, all from `n - k_high - below` on for the high side.
    let cut_lo = t_lo.map(|t| Cut {
        value: t.value,
        masked_ties: 0..k_low - t.below,
        keep_above: true,
    });
    let cut_hi = t_hi.map(|t| Cut {
        value: t.value,
        masked_ties: n - k_high - t.below..usize::MAX,
        keep_above: false,
    });
    adv_keep
        .par_chunks_mut(chunk)
        .zip(ent_keep.par_chunks_mut(chunk))
        .zip(std.par_chunks(chunk))
        .zip(ties_lo.into_par_iter().zip(ties_hi))
        .for_each(|(((adv, ent), xs), (lo, hi))| {
            mark(adv, xs, &cut_lo, lo);
            mark(ent, xs, &cut_hi, hi);
        });
    Ok(())
}

/// One side of a batch mask: values strictly beyond `value` on the kept side are kept, values
/// strictly on the other side are masked, and of the values equal to it those whose tie rank
/// falls in `masked_ties` are masked.
struct Cut<F> {
    value: F,
    masked_ties: std::ops::Range<usize>,
    keep_above: bool,
}

/// Write one chunk of a mask (every element: the batch path does not pre-fill). `ties` is the
/// chunk's first tie rank and its number of ties; chunks whose ties are all masked need no
/// second look.
fn mark<F: Real>(out: &mut [bool], xs: &[F], cut: &Option<Cut<F>>, (first, count): (usize, usize)) {
    let Some(cut) = cut else {
        out.fill(true);
        return;
    };
    let v = cut.value;
    if cut.keep_above {
        out.iter_mut().zip(xs).for_each(|(o, &x)| *o = x > v);
    } else {
        out.iter_mut().zip(xs).for_each(|(o, &x)| *o = x < v);
    }
    let all_masked =
        |last: usize| cut.masked_ties.contains(&first) && cut.masked_ties.contains(&last);
    if count > 0 && !all_masked(first + count - 1) {
        let mut rank = first;
        for (o, &x) in out.iter_mut().zip(xs) {
            if x == v {
                *o = !cut.masked_ties.contains(&rank);
                rank += 1;
            }
        }
    }
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
    fn sample_blind_to_the_tail_still_gives_exact_masks() {
        // The strided sample sees only even positions (all 0.0), so the high bracket misses.
        let std: Vec<f64> = (0..4 * SAMPLE)
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
}
