//! Batch scope of the percentile masks: the two boundary values of the whole batch in two
//! parallel passes over `std`, with no sort and no copy of the batch.
//!
//! 1. A strided sample of [`SAMPLE`] values brackets the value at each boundary rank (the sample
//!    order statistics about 4 standard deviations of the sample rank on either side of it).
//! 2. Tally pass, one rayon task per chunk: per bracket `[a, b]`, count `x < a`, `x <= a`,
//!    `x <= b` in vector lanes, gather the few values strictly inside either bracket (a bit mask
//!    per group of [`LANES`] values, so the gather costs only where there are hits), and check
//!    finiteness.
//! 3. The exact boundary value of each side comes from the counts, or from `select_nth_unstable`
//!    on that side's gathered values (the two sides in parallel). A bracket that missed, which
//!    only an adversarial order defeats the sample into, is widened to everything and the tally
//!    rerun: exact either way.
//! 4. Marking pass, one rayon task per chunk: both masks in one sweep; ties with a threshold are
//!    resolved by position from per-chunk tie counts, and only in chunks whose ties are split.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{mark, mask_count, Cut};
use crate::dispatch::avx2_dispatch;
use crate::error::Result;
use crate::real::{check_finite, Real};

/// Values per rayon task (at least; larger batches get about 4 tasks per thread).
const CHUNK: usize = 1 << 16;
/// Upper bound on a task, so that a lane counter (`u32`) never overflows.
const MAX_CHUNK: usize = 1 << 30;
/// Values counted side by side in one group (one or two vector registers of `f32`).
const LANES: usize = 8;
/// Values per block of the tally loop (its gathered values are staged on the stack).
const BLOCK: usize = 256;
/// Size of the strided sample that brackets the boundary values.
pub(super) const SAMPLE: usize = 1 << 16;

/// Values `a <= b` expected to bracket the value of boundary rank `rank` (0-based, in
/// `(std, position)` order); `-inf`/`+inf` when open on that side.
#[derive(Clone, Copy)]
struct Bracket<F> {
    rank: usize,
    a: F,
    b: F,
}

impl<F: Real> Bracket<F> {
    /// Whether `x` lies strictly inside the bracket.
    fn holds(&self, x: F) -> bool {
        (x > self.a) & (x < self.b)
    }
}

/// One chunk's counts against one bracket.
#[derive(Clone, Copy, Default)]
struct Counts {
    lt_a: usize,
    le_a: usize,
    le_b: usize,
}

/// One chunk against both brackets: the counts, the values strictly inside either bracket (in
/// position order) and whether every value is finite.
struct Tally<F> {
    counts: [Counts; 2],
    inside: Vec<F>,
    finite: bool,
}

/// The exact value at a boundary rank, how many values lie strictly below it, and how many equal
/// it in each chunk.
struct Threshold<F> {
    value: F,
    below: usize,
    ties: Vec<usize>,
}

/// Write every element of `adv_keep` and `ent_keep` for the whole batch.
/// Float comparisons treat `-0.0 == 0.0`, as [`Real::order_key`] does for the other scopes.
pub(super) fn mask_batch<F: Real>(
    std: &[F],
    low: f64,
    high: f64,
    adv_keep: &mut [MaybeUninit<bool>],
    ent_keep: &mut [MaybeUninit<bool>],
) -> Result<()> {
    let n = std.len();
    let (k_low, k_high) = (mask_count(low, n), mask_count(high, n));
    let chunk = CHUNK
        .max(n / (4 * rayon::current_num_threads()) + 1)
        .min(MAX_CHUNK);
    let brackets = sample_brackets(std, boundary_ranks(n, k_low, k_high));
    let Some(cuts) = exact_cuts(std, chunk, k_low, k_high, brackets) else {
        return check_finite("std", std);
    };
    adv_keep
        .par_chunks_mut(chunk)
        .zip(ent_keep.par_chunks_mut(chunk))
        .zip(std.par_chunks(chunk))
        .zip(cuts.fix_lo.into_par_iter().zip(cuts.fix_hi))
        .for_each(|(((adv, ent), xs), (lo, hi))| {
            mark(adv, ent, xs, (&cuts.lo, lo), (&cuts.hi, hi));
        });
    Ok(())
}

/// The boundary ranks (0-based, in `(std, position)` order) of a scope of `n` values: the last
/// low-masked value and the first high-masked one, `None` for an empty mask.
pub(super) fn boundary_ranks(n: usize, k_low: usize, k_high: usize) -> [Option<usize>; 2] {
    [k_low.checked_sub(1), (k_high > 0).then(|| n - k_high)]
}

/// Both cuts of a scope, and per chunk and side the tie rank [`mark`] needs (see [`split_ties`]).
struct Cuts<F> {
    lo: Cut<F>,
    hi: Cut<F>,
    fix_lo: Vec<Option<usize>>,
    fix_hi: Vec<Option<usize>>,
}

/// The exact cuts of the scope `xs` (steps 2 and 3 of the module docs), tallied in chunks of
/// `chunk` values, from brackets of its boundary ranks (`None` for an empty mask). `None` if a
/// value is not finite.
fn exact_cuts<F: Real>(
    xs: &[F],
    chunk: usize,
    k_low: usize,
    k_high: usize,
    brackets: [Option<Bracket<F>>; 2],
) -> Option<Cuts<F>> {
    let n = xs.len();
    let used = brackets.map(|b| b.is_some());
    // A side without a boundary gets a bracket that gathers nothing.
    let unused = Bracket {
        rank: 0,
        a: F::INFINITY,
        b: F::INFINITY,
    };
    let mut brackets = brackets.map(|b| b.unwrap_or(unused));
    let found = loop {
        // A batch of one chunk is not worth rayon tasks.
        let parallel = n > chunk;
        let tallies: Vec<Tally<F>> = if parallel {
            xs.par_chunks(chunk)
                .map(|xs| tally_chunk(xs, &brackets))
                .collect()
        } else {
            xs.chunks(chunk.max(1))
                .map(|xs| tally_chunk(xs, &brackets))
                .collect()
        };
        if !tallies.iter().all(|t| t.finite) {
            return None;
        }
        let side = |i: usize| used[i].then(|| resolve(&tallies, i, &brackets[i]));
        let found = if parallel {
            let (lo, hi) = rayon::join(|| side(0), || side(1));
            [lo, hi]
        } else {
            [side(0), side(1)]
        };
        if found.iter().all(|t| !matches!(t, Some(None))) {
            break found.map(Option::flatten);
        }
        for (br, t) in brackets.iter_mut().zip(&found) {
            if matches!(t, Some(None)) {
                (br.a, br.b) = (-F::INFINITY, F::INFINITY);
            }
        }
    };
    let [t_lo, t_hi] = found;
    // Tie ranks (0-based among the values equal to a threshold, by position) that are masked:
    // the first `k_low - below` on the low side, all from `n - k_high - below` on the high side.
    let lo = t_lo.as_ref().map_or(Cut::keep_all(-F::INFINITY), |t| Cut {
        value: t.value,
        masked_ties: 0..k_low - t.below,
    });
    let hi = t_hi.as_ref().map_or(Cut::keep_all(F::INFINITY), |t| Cut {
        value: t.value,
        masked_ties: n - k_high - t.below..usize::MAX,
    });
    let n_chunks = n.div_ceil(chunk);
    Some(Cuts {
        fix_lo: split_ties(t_lo.as_ref(), &lo, n_chunks),
        fix_hi: split_ties(t_hi.as_ref(), &hi, n_chunks),
        lo,
        hi,
    })
}

/// Per chunk, the tie rank of its first value equal to the threshold if some of its ties are
/// kept (the marking pass masks every tie, then must look at them one by one), else `None`.
fn split_ties<F>(t: Option<&Threshold<F>>, cut: &Cut<F>, n_chunks: usize) -> Vec<Option<usize>> {
    let Some(t) = t else {
        return vec![None; n_chunks];
    };
    let mut seen = 0;
    t.ties
        .iter()
        .map(|&count| {
            let first = seen;
            seen += count;
            // `masked_ties` is a range: holding the first and the last tie, it holds them all.
            let all_masked = count == 0
                || cut.masked_ties.contains(&first) && cut.masked_ties.contains(&(seen - 1));
            (!all_masked).then_some(first)
        })
        .collect()
}

/// Brackets for the boundary ranks from a strided sample (see the module docs).
fn sample_brackets<F: Real>(std: &[F], ranks: [Option<usize>; 2]) -> [Option<Bracket<F>>; 2] {
    let n = std.len();
    // A constant stride, `s = n / stride` in `[SAMPLE, 2 * SAMPLE)`; the reads are scattered
    // (latency-bound), so both threads take part.
    let stride = (n / SAMPLE).max(1);
    let s = n / stride;
    let mut sample: Vec<F::Key> = (0..s)
        .into_par_iter()
        .map(|i| std[i * stride].order_key())
        .collect();
    // Sample ranks of both ends of both brackets, ascending, so that each selection only
    // partitions what lies right of the previous one.
    let ends = ranks.map(|r| {
        r.map(|rank| {
            let p = rank as f64 / n as f64;
            let centre = (p * s as f64) as usize;
            let d = (4.0 * (s as f64 * p * (1.0 - p)).sqrt()) as usize + 8;
            (centre.checked_sub(d), Some(centre + d).filter(|&e| e < s))
        })
    });
    let mut wanted: Vec<usize> = ends
        .iter()
        .flatten()
        .flat_map(|&(a, b)| [a, b])
        .flatten()
        .collect();
    wanted.sort_unstable();
    let mut values = Vec::with_capacity(wanted.len());
    let mut start = 0;
    for &r in &wanted {
        let (_, key, _) = sample[start..].select_nth_unstable(r - start);
        values.push((r, F::from_order_key(*key)));
        start = r;
    }
    let value_at = |r: Option<usize>, open: F| {
        r.map_or(open, |r| {
            values.iter().find(|v| v.0 == r).expect("selected").1
        })
    };
    [0, 1].map(|side| {
        let (rank, (a, b)) = (ranks[side]?, ends[side]?);
        Some(Bracket {
            rank,
            a: value_at(a, -F::INFINITY),
            b: value_at(b, F::INFINITY),
        })
    })
}

avx2_dispatch! {
    /// Count a chunk against both brackets and gather the values strictly inside either one
    /// ([`tally_chunk_portable`], with AVX2 when the CPU has it).
    fn tally_chunk<F: Real>(xs: &[F], br: &[Bracket<F>; 2]) -> Tally<F> = tally_chunk_portable;
}

/// The tally loop: lane-wise counters the compiler keeps in vector registers, and a hit mask per
/// group of [`LANES`] values whose set bits are the values to gather. Hits (a few percent) are
/// staged per block of [`BLOCK`] values, up to two per group copied without a data-dependent
/// branch, which would mispredict often; the staged hits are appended once per block, so the
/// inner loop makes no call that would spill the counters.
#[inline(always)]
fn tally_chunk_portable<F: Real>(xs: &[F], br: &[Bracket<F>; 2]) -> Tally<F> {
    let [(a0, b0), (a1, b1)] = br.map(|b| (b.a, b.b));
    let is_inside = |x: F| ((x > a0) & (x < b0)) | ((x > a1) & (x < b1));
    // Per lane: x < a0, x <= a0, x <= b0, x < a1, x <= a1, x <= b1, x not finite.
    let mut lanes = [[0u32; LANES]; 7];
    let mut inside = Vec::new();
    let mut staged = [F::ZERO; BLOCK + 2];
    let (blocks, rest) = xs.as_chunks::<BLOCK>();
    for block in blocks {
        let mut k = 0;
        let [mut c0, mut c1, mut c2, mut c3, mut c4, mut c5, mut c6] = lanes;
        for g in block.as_chunks::<LANES>().0 {
            let mut hits = 0u32;
            for l in 0..LANES {
                let x = g[l];
                c0[l] += (x < a0) as u32;
                c1[l] += (x <= a0) as u32;
                c2[l] += (x <= b0) as u32;
                c3[l] += (x < a1) as u32;
                c4[l] += (x <= a1) as u32;
                c5[l] += (x <= b1) as u32;
                c6[l] += !x.is_finite() as u32;
                hits |= (is_inside(x) as u32) << l;
            }
            // The first two hits: copied unconditionally, `k` only advances past real ones.
            for _ in 0..2 {
                staged[k] = g[(hits.trailing_zeros() as usize) & (LANES - 1)];
                k += (hits != 0) as usize;
                hits &= hits.wrapping_sub(1);
            }
            while hits != 0 {
                staged[k] = g[hits.trailing_zeros() as usize];
                k += 1;
                hits &= hits - 1;
            }
        }
        lanes = [c0, c1, c2, c3, c4, c5, c6];
        inside.extend_from_slice(&staged[..k]);
    }
    let total = |c: usize| lanes[c].iter().map(|&v| v as usize).sum::<usize>();
    let mut counts = [0, 3].map(|c| Counts {
        lt_a: total(c),
        le_a: total(c + 1),
        le_b: total(c + 2),
    });
    let mut all_finite = total(6) == 0;
    for &x in rest {
        for (c, (a, b)) in counts.iter_mut().zip([(a0, b0), (a1, b1)]) {
            c.lt_a += (x < a) as usize;
            c.le_a += (x <= a) as usize;
            c.le_b += (x <= b) as usize;
        }
        all_finite &= x.is_finite();
        if is_inside(x) {
            inside.push(x);
        }
    }
    Tally {
        counts,
        inside,
        finite: all_finite,
    }
}

/// The threshold of bracket `side` from the chunks' tallies, or `None` if the bracket missed
/// the boundary rank.
fn resolve<F: Real>(tallies: &[Tally<F>], side: usize, br: &Bracket<F>) -> Option<Threshold<F>> {
    // This side's gathered values as integer keys (they select faster than floats through
    // `partial_cmp`), and how many came from each chunk. Either side holds about half of the
    // gathered values, so the filter is written without a branch that would mispredict.
    let mut keys: Vec<F::Key> = Vec::new();
    let inside_per_chunk: Vec<usize> = tallies
        .iter()
        .map(|t| {
            let start = keys.len();
            keys.resize(start + t.inside.len(), F::Key::default());
            let mut k = start;
            for &x in &t.inside {
                keys[k] = x.order_key();
                k += br.holds(x) as usize;
            }
            keys.truncate(k);
            k - start
        })
        .collect();
    let counts = || tallies.iter().map(|t| t.counts[side]);
    let lt_a: usize = counts().map(|c| c.lt_a).sum();
    let at_a: usize = counts().map(|c| c.le_a - c.lt_a).sum();
    let inside = keys.len();
    let at_b = counts().map(|c| c.le_b - c.le_a).sum::<usize>() - inside;
    let r = br.rank.checked_sub(lt_a)?;
    if r < at_a {
        return Some(Threshold {
            value: br.a,
            below: lt_a,
            ties: counts().map(|c| c.le_a - c.lt_a).collect(),
        });
    }
    let r = r - at_a;
    if r < inside {
        let (smaller, &mut key, _) = keys.select_nth_unstable(r);
        let below = lt_a + at_a + smaller.iter().filter(|&&k| k < key).count();
        let value = F::from_order_key(key);
        // The value lies strictly inside the bracket: its ties are all among the gathered.
        let ties = tallies
            .iter()
            .map(|t| t.inside.iter().filter(|&&v| v == value).count())
            .collect();
        return Some(Threshold { value, below, ties });
    }
    (r - inside < at_b).then(|| Threshold {
        value: br.b,
        below: lt_a + at_a + inside,
        ties: counts()
            .zip(&inside_per_chunk)
            .map(|(c, &i)| c.le_b - c.le_a - i)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_tally_matches_portable_tally() {
        let mut rng = crate::rng::SplitMix64::new(3);
        // 1000 values: whole blocks, whole lane groups and a remainder; few distinct values.
        let xs: Vec<f32> = (0..1000).map(|_| rng.below(50) as f32 * 0.1).collect();
        let br = [
            Bracket {
                rank: 0,
                a: 0.5,
                b: 1.5,
            },
            Bracket {
                rank: 0,
                a: 3.0,
                b: 3.0,
            },
        ];
        let (got, want) = (tally_chunk(&xs, &br), tally_chunk_portable(&xs, &br));
        assert_eq!(got.inside, want.inside);
        assert!(got.finite && want.finite);
        for side in 0..2 {
            let (g, w) = (got.counts[side], want.counts[side]);
            assert_eq!((g.lt_a, g.le_a, g.le_b), (w.lt_a, w.le_a, w.le_b));
        }
        let expected: Vec<f32> = xs.iter().copied().filter(|&x| x > 0.5 && x < 1.5).collect();
        assert_eq!(want.inside, expected);
        assert_eq!(
            want.counts[1].le_a - want.counts[1].lt_a,
            xs.iter().filter(|&&x| x == 3.0).count()
        );
    }
}
