//! Generalized advantage estimation over a packed batch (AsyPPO §3 step 5; Schulman et al. 2016).

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, check_unit_range, Real};
use crate::segments::{split_at_bounds, task_bounds, validate_offsets};

/// GAE by one reverse scan per sequence, in parallel across sequences.
///
/// For each sequence `[a, b)` of `offsets`, with `V(b) = 0` (the value after the last token):
/// `delta_t = r_t + gamma * V(t+1) - V(t)`, `A_t = delta_t + gamma * lam * A_{t+1}` (`A_b = 0`),
/// `R_t = A_t + V(t)`. `rewards`, `values`, `advantages`, `returns` all have length `T`;
/// `offsets` has length `n_seq + 1`. The scan runs in the element type `F`.
///
/// Errors: length mismatch, invalid offsets, `gamma` or `lam` outside `[0, 1]`, non-finite
/// rewards or values.
pub fn gae<F: Real>(
    rewards: &[F],
    values: &[F],
    offsets: &[i64],
    gamma: f64,
    lam: f64,
    advantages: &mut [F],
    returns: &mut [F],
) -> Result<()> {
    let n = rewards.len();
    if values.len() != n {
        return Err(EngineError::shape(
            "values",
            format!("length {n} (as rewards)"),
            values.len(),
        ));
    }
    if advantages.len() != n || returns.len() != n {
        return Err(EngineError::shape(
            "out",
            format!("length {n}"),
            advantages.len().min(returns.len()),
        ));
    }
    validate_offsets(offsets, n)?;
    check_unit_range("gamma", gamma, 0.0, 1.0)?;
    check_unit_range("lam", lam, 0.0, 1.0)?;
    let g = F::from_f64(gamma);
    let gl = F::from_f64(gamma * lam);
    let bounds = task_bounds(offsets);
    let adv_parts = split_at_bounds(advantages, offsets, &bounds);
    let ret_parts = split_at_bounds(returns, offsets, &bounds);
    let all_finite = adv_parts
        .into_par_iter()
        .zip(ret_parts)
        .zip(bounds.par_windows(2))
        .map(|((adv, ret), w)| {
            let base = offsets[w[0]] as usize;
            let mut finite = true;
            for s in w[0]..w[1] {
                let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
                let (mut next_value, mut acc) = (F::ZERO, F::ZERO);
                for t in (a..b).rev() {
                    let (r, v) = (rewards[t], values[t]);
                    acc = r + g * next_value - v + gl * acc;
                    adv[t - base] = acc;
                    ret[t - base] = acc + v;
                    next_value = v;
                }
                // A non-finite reward or value poisons the sequence's first advantage.
                finite &= acc.is_finite();
            }
            finite
        })
        .reduce(|| true, |x, y| x & y);
    if !all_finite {
        check_finite("rewards", rewards)?;
        check_finite("values", values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(
        r: &[f64],
        v: &[f64],
        offsets: &[i64],
        gamma: f64,
        lam: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut adv = vec![0.0; r.len()];
        for w in offsets.windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            for t in a..b {
                // Direct sum over the future deltas: A_t = sum_l (gamma lam)^l delta_{t+l}.
                let mut s = 0.0;
                for (l, u) in (t..b).enumerate() {
                    let next = if u + 1 < b { v[u + 1] } else { 0.0 };
                    s += (gamma * lam).powi(l as i32) * (r[u] + gamma * next - v[u]);
                }
                adv[t] = s;
            }
        }
        let ret = adv.iter().zip(v).map(|(a, v)| a + v).collect();
        (adv, ret)
    }

    #[test]
    fn gamma_lam_one_gives_reward_to_go_minus_value() {
        let r = [0.0f32, 0.0, 1.0, 2.0, 0.5];
        let v = [0.1f32, 0.2, 0.3, 0.4, 0.5];
        let offsets = [0, 3, 5];
        let (mut a, mut ret) = (vec![0.0; 5], vec![0.0; 5]);
        gae(&r, &v, &offsets, 1.0, 1.0, &mut a, &mut ret).unwrap();
        let expected = [1.0 - 0.1, 1.0 - 0.2, 1.0 - 0.3, 2.5 - 0.4, 0.5 - 0.5];
        for (x, y) in a.iter().zip(expected) {
            assert!((x - y).abs() < 1e-6);
        }
        assert_eq!(ret, vec![1.0, 1.0, 1.0, 2.5, 0.5]);
    }

    #[test]
    fn nan_reward_is_reported_with_its_index() {
        let r = [0.0f64, f64::NAN];
        let err = gae(
            &r,
            &[0.0, 0.0],
            &[0, 2],
            1.0,
            1.0,
            &mut [0.0; 2],
            &mut [0.0; 2],
        )
        .unwrap_err();
        assert!(matches!(
            err,
            EngineError::NonFinite {
                arg: "rewards",
                index: 1,
                ..
            }
        ));
    }

    #[test]
    fn gamma_outside_unit_interval_is_rejected() {
        let err = gae::<f32>(&[], &[], &[0], 1.5, 1.0, &mut [], &mut []).unwrap_err();
        assert!(err.to_string().starts_with("gamma"));
    }

    proptest! {
        #[test]
        fn matches_direct_sum(lens in prop::collection::vec(0usize..20, 0..12),
                              gamma in 0.0f64..=1.0, lam in 0.0f64..=1.0, seed in any::<u64>()) {
            let mut offsets = vec![0i64];
            for l in &lens { offsets.push(offsets.last().unwrap() + *l as i64); }
            let n = *offsets.last().unwrap() as usize;
            let mut rng = crate::rng::SplitMix64::new(seed);
            let r: Vec<f64> = (0..n).map(|_| rng.next_f64() - 0.5).collect();
            let v: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
            let (mut a, mut ret) = (vec![0.0; n], vec![0.0; n]);
            gae(&r, &v, &offsets, gamma, lam, &mut a, &mut ret).unwrap();
            let (ea, er) = reference(&r, &v, &offsets, gamma, lam);
            for t in 0..n {
                prop_assert!((a[t] - ea[t]).abs() < 1e-9);
                prop_assert!((ret[t] - er[t]).abs() < 1e-9);
            }
        }
    }
}
