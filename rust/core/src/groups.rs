//! Critic-free group baselines (GRPO, Dr.GRPO, RLOO) and their broadcast to tokens.

use rayon::prelude::*;

use crate::dispatch::avx2_dispatch;
use crate::error::{EngineError, Result};
use crate::real::{check_finite, Real};
use crate::segments::{split_at_bounds, task_bounds, validate_offsets};

/// The group baseline to subtract from each response's scalar score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBaseline {
    /// `(r - mean_g) / (std_g + eps)`, unbiased std (GRPO, Shao et al. 2024, DeepSeekMath §4.1.2).
    Grpo,
    /// `r - mean_g` (Dr.GRPO, Liu et al. 2025, "Understanding R1-Zero-Like Training" §3.1).
    DrGrpo,
    /// `r - mean of the other members` (RLOO, Ahmadian et al. 2024 §3).
    Rloo,
}

/// Per-sequence advantages from scalar `scores[n]` and `group_ids[n]` into `out[n]`.
/// A group of one response gets advantage 0 under every baseline. Statistics are in f64.
///
/// Errors: length mismatch, non-finite scores, `eps` negative or non-finite.
pub fn group_advantages<F: Real>(
    scores: &[F],
    group_ids: &[i64],
    how: GroupBaseline,
    eps: f64,
    out: &mut [F],
) -> Result<()> {
    let n = scores.len();
    if group_ids.len() != n {
        return Err(EngineError::shape(
            "group_ids",
            format!("length {n} (as scores)"),
            group_ids.len(),
        ));
    }
    if out.len() != n {
        return Err(EngineError::shape("out", format!("length {n}"), out.len()));
    }
    check_finite("scores", scores)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(EngineError::range("eps", "a finite number >= 0", eps));
    }
    let advantage = |r: f64, (mean, scale): (f64, f64)| F::from_f64((r - mean) * scale);
    // The usual layout: n samples per prompt side by side, prompts in ascending order.
    if uniform_groups(scores, group_ids, how, eps, out) {
        return Ok(());
    }
    match crate::shard::ascending_runs(group_ids) {
        // Every group a contiguous stretch, read and written in place.
        Some(starts) => {
            for w in starts.windows(2) {
                let (rs, out) = (&scores[w[0]..w[1]], &mut out[w[0]..w[1]]);
                let b = baseline(rs.iter().map(|r| r.to_f64()), how, eps);
                out.iter_mut()
                    .zip(rs)
                    .for_each(|(o, &r)| *o = advantage(r.to_f64(), b));
            }
        }
        None => {
            for group in crate::shard::group_members(group_ids).iter() {
                let b = baseline(group.iter().map(|&i| scores[i].to_f64()), how, eps);
                group
                    .iter()
                    .for_each(|&i| out[i] = advantage(scores[i].to_f64(), b));
            }
        }
    }
    Ok(())
}

/// [`group_advantages`] when the groups are consecutive runs of one size `G` in 2, 4, ..., 64
/// with ascending ids: a copy of the loop per size unrolls a group's sums and computes four
/// groups' statistics in the lanes of one vector (AVX2 when the CPU has it). `false`, with
/// nothing written, for any other layout.
fn uniform_groups<F: Real>(
    scores: &[F],
    group_ids: &[i64],
    how: GroupBaseline,
    eps: f64,
    out: &mut [F],
) -> bool {
    crate::shard::with_fixed_group_size!(group_ids, G => {
        fixed_size_groups::<F, G>(scores, group_ids, how, eps, out)
    })
}

avx2_dispatch! {
    /// The advantages of groups of exactly `G` (the layout checked in one vectorised pass
    /// first), with AVX2 when the CPU has it.
    fn fixed_size_groups<F: Real; const G: usize>(
        scores: &[F],
        group_ids: &[i64],
        how: GroupBaseline,
        eps: f64,
        out: &mut [F],
    ) -> bool = fixed_size_groups_portable;
}

// The sums index by score, then group: that lane-major order is what vectorises across groups.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn fixed_size_groups_portable<F: Real, const G: usize>(
    scores: &[F],
    group_ids: &[i64],
    how: GroupBaseline,
    eps: f64,
    out: &mut [F],
) -> bool {
    if !crate::shard::fixed_size_runs::<G>(group_ids) {
        return false;
    }
    let (scores, out) = (scores.as_chunks::<G>().0, out.as_chunks_mut::<G>().0);
    let write = |o: &mut [F; G], r: &[F; G], (mean, scale): (f64, f64)| {
        for l in 0..G {
            o[l] = F::from_f64((r[l].to_f64() - mean) * scale);
        }
    };
    // Four groups side by side, each sum running over one vector lane: the groups' means, sums of
    // squares, square roots and divisions are computed four at a time (summed in the same order
    // as one group at a time, so the results are the same).
    let (k, inv_k) = (G as f64, 1.0 / G as f64);
    let quads = scores.as_chunks::<QUAD>();
    let outs = out.as_chunks_mut::<QUAD>();
    for (rs, os) in quads.0.iter().zip(outs.0) {
        let mut sum = [0.0; QUAD];
        for l in 0..G {
            for q in 0..QUAD {
                sum[q] += rs[q][l].to_f64();
            }
        }
        let mean = sum.map(|s| s * inv_k);
        let mut sq = [0.0; QUAD];
        if how == GroupBaseline::Grpo {
            for l in 0..G {
                for q in 0..QUAD {
                    sq[q] += (rs[q][l].to_f64() - mean[q]).powi(2);
                }
            }
        }
        for q in 0..QUAD {
            write(&mut os[q], &rs[q], (mean[q], scale(how, k, eps, sq[q])));
        }
    }
    for (r, o) in quads.1.iter().zip(outs.1) {
        write(o, r, baseline(r.iter().map(|x| x.to_f64()), how, eps));
    }
    true
}

/// Groups whose statistics [`fixed_size_groups`] computes side by side, one per f64 lane.
const QUAD: usize = 4;

/// `(mean, scale)` of one group's scores `rs` (as f64), such that each advantage is
/// `(r - mean) * scale` (a group of one gets scale 0).
#[inline(always)]
fn baseline(
    rs: impl ExactSizeIterator<Item = f64> + Clone,
    how: GroupBaseline,
    eps: f64,
) -> (f64, f64) {
    let k = rs.len() as f64;
    if rs.len() < 2 {
        return (0.0, 0.0);
    }
    let mean = rs.clone().sum::<f64>() * (1.0 / k);
    let sq = match how {
        GroupBaseline::Grpo => rs.map(|r| (r - mean).powi(2)).sum(),
        _ => 0.0,
    };
    (mean, scale(how, k, eps, sq))
}

/// The factor of `r - mean` for a group of `k >= 2` whose squared deviations sum to `sq` (only
/// GRPO reads it): `1 / (std + eps)` with the unbiased std, 1, or RLOO's `k / (k - 1)`, since
/// `r - (sum - r) / (k - 1)` is `(r - mean) * k / (k - 1)`: a per-group scale, not a
/// per-response division. Reciprocals of the group size are constants in the fixed-size code (one
/// rounding more than dividing, far below the tests' 1e-12).
#[inline(always)]
fn scale(how: GroupBaseline, k: f64, eps: f64, sq: f64) -> f64 {
    let inv_k1 = 1.0 / (k - 1.0);
    match how {
        GroupBaseline::Grpo => 1.0 / ((sq * inv_k1).sqrt() + eps),
        GroupBaseline::DrGrpo => 1.0,
        GroupBaseline::Rloo => k * inv_k1,
    }
}

/// `out[t] = per_seq[s]` for every token `t` of sequence `s` (`np.repeat(per_seq, lengths)`).
///
/// Errors: invalid offsets, `per_seq.len() != n_seq`.
pub fn broadcast_to_tokens<T: Copy + Send + Sync>(
    per_seq: &[T],
    offsets: &[i64],
    out: &mut [T],
) -> Result<()> {
    validate_offsets(offsets, out.len())?;
    if per_seq.len() != offsets.len() - 1 {
        return Err(EngineError::shape(
            "per_seq",
            format!("length {} (len(offsets) - 1)", offsets.len() - 1),
            per_seq.len(),
        ));
    }
    let bounds = task_bounds(offsets);
    split_at_bounds(out, offsets, &bounds)
        .into_par_iter()
        .zip(bounds.par_windows(2))
        .for_each(|(part, w)| {
            let base = offsets[w[0]] as usize;
            for s in w[0]..w[1] {
                part[offsets[s] as usize - base..offsets[s + 1] as usize - base].fill(per_seq[s]);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_on_one_group() {
        let scores = [1.0f64, 0.0, 0.0, 1.0];
        let mut out = [0.0; 4];
        group_advantages(&scores, &[7; 4], GroupBaseline::DrGrpo, 0.0, &mut out).unwrap();
        assert_eq!(out, [0.5, -0.5, -0.5, 0.5]);
        group_advantages(&scores, &[7; 4], GroupBaseline::Rloo, 0.0, &mut out).unwrap();
        assert!((out[0] - (1.0 - 1.0 / 3.0)).abs() < 1e-12);
        group_advantages(&scores, &[7; 4], GroupBaseline::Grpo, 0.0, &mut out).unwrap();
        let std = (1.0f64 / 3.0).sqrt();
        assert!((out[0] - 0.5 / std).abs() < 1e-12);
    }

    #[test]
    fn singleton_groups_get_zero() {
        let mut out = [9.0f32; 2];
        group_advantages(&[3.0, 4.0], &[0, 1], GroupBaseline::Grpo, 1e-6, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn broadcast_repeats_per_sequence_values() {
        let mut out = [0i64; 5];
        broadcast_to_tokens(&[1, 2, 3], &[0, 2, 2, 5], &mut out).unwrap();
        assert_eq!(out, [1, 1, 3, 3, 3]);
    }
}
