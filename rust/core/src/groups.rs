//! Critic-free group baselines (GRPO, Dr.GRPO, RLOO) and their broadcast to tokens.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, Real};
use crate::segments::{group_members, split_at_bounds, task_bounds, validate_offsets};

/// The group baseline to subtract from each response's scalar score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBaseline {
    /// `(r - mean_g) / (std_g + eps)`, unbiased std (GRPO: DeepSeekMath, arXiv 2402.03300 §4.1.2).
    Grpo,
    /// `r - mean_g` (Dr.GRPO, arXiv 2503.20783 §3.1).
    DrGrpo,
    /// `r - mean of the other members` (RLOO, arXiv 2402.14740 §3).
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
    for group in group_members(group_ids).iter() {
        let (mean, scale) = baseline(group.iter().map(|&i| scores[i].to_f64()), how, eps);
        for &i in group {
            out[i] = F::from_f64((scores[i].to_f64() - mean) * scale);
        }
    }
    Ok(())
}

/// `(mean, scale)` of one group's scores `rs` (as f64), such that each advantage is
/// `(r - mean) * scale` (a group of one gets scale 0).
fn baseline(
    rs: impl ExactSizeIterator<Item = f64> + Clone,
    how: GroupBaseline,
    eps: f64,
) -> (f64, f64) {
    let k = rs.len() as f64;
    if rs.len() < 2 {
        return (0.0, 0.0);
    }
    let mean = rs.clone().sum::<f64>() / k;
    let sq = match how {
        GroupBaseline::Grpo => rs.map(|r| (r - mean).powi(2)).sum(),
        _ => 0.0,
    };
    (mean, scale(how, k, eps, sq))
}

/// The factor of `r - mean` for a group of `k >= 2` whose squared deviations sum to `sq` (only
/// GRPO reads it): `1 / (std + eps)` with the unbiased std, 1, or RLOO's `k / (k - 1)`, since
/// `r - (sum - r) / (k - 1)` is `(r - mean) * k / (k - 1)`: a per-group scale, not a
/// per-response division.
fn scale(how: GroupBaseline, k: f64, eps: f64, sq: f64) -> f64 {
    match how {
        GroupBaseline::Grpo => 1.0 / ((sq / (k - 1.0)).sqrt() + eps),
        GroupBaseline::DrGrpo => 1.0,
        GroupBaseline::Rloo => k / (k - 1.0),
    }
}

/// `out[t] = per_seq[s]` for every token `t` of sequence `s` (`np.repeat(per_seq, lengths)`),
/// as a new vector of `offsets[n_seq]` elements, written in parallel across sequences.
///
/// Errors: invalid offsets, `per_seq.len() != n_seq`, an output too large to allocate (checked
/// after the offsets, before any allocation).
pub fn broadcast_to_tokens<T: Copy + Send + Sync>(
    per_seq: &[T],
    offsets: &[i64],
) -> Result<Vec<T>> {
    let n_tokens = offsets
        .last()
        .map_or(0, |&last| usize::try_from(last).unwrap_or(0));
    validate_offsets(offsets, n_tokens)?;
    if per_seq.len() != offsets.len() - 1 {
        return Err(EngineError::shape(
            "per_seq",
            format!("length {} (len(offsets) - 1)", offsets.len() - 1),
            per_seq.len(),
        ));
    }
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(n_tokens).map_err(|_| {
        EngineError::range(
            "offsets",
            "an output that fits in memory",
            format!("{n_tokens} tokens"),
        )
    })?;
    let bounds = task_bounds(offsets);
    split_at_bounds(&mut out.spare_capacity_mut()[..n_tokens], offsets, &bounds)
        .into_par_iter()
        .zip(bounds.par_windows(2))
        .for_each(|(part, w)| {
            let base = offsets[w[0]] as usize;
            for s in w[0]..w[1] {
                let tokens = offsets[s] as usize - base..offsets[s + 1] as usize - base;
                part[tokens].fill(MaybeUninit::new(per_seq[s]));
            }
        });
    // SAFETY: the sequences of valid offsets tile `0..n_tokens`, so every element was written.
    unsafe { out.set_len(n_tokens) };
    Ok(out)
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
        let out = broadcast_to_tokens(&[1, 2, 3], &[0, 2, 2, 5]).unwrap();
        assert_eq!(out, [1, 1, 3, 3, 3]);
        assert_eq!(broadcast_to_tokens::<i64>(&[], &[0]).unwrap(), []);
    }

    #[test]
    fn broadcast_refuses_bad_or_huge_offsets_before_allocating() {
        for offsets in [&[][..], &[0, -1], &[1, 2], &[0, 3, 2]] {
            let err = broadcast_to_tokens(&[1.0f32; 2][..offsets.len().saturating_sub(1)], offsets);
            assert!(err.unwrap_err().to_string().starts_with("offsets"));
        }
        let err = broadcast_to_tokens(&[1.0f64], &[0, i64::MAX]).unwrap_err();
        assert!(err.to_string().contains("fits in memory"), "{err}");
    }
}
