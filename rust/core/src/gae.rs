//! Generalized advantage estimation over a packed batch (Schulman et al. 2016, arXiv 1506.02438,
//! equation 16; step 5 of `docs/algorithm.md`).

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, check_unit_range, Real};
use crate::segments::{split_at_bounds, task_bounds, validate_offsets};

/// GAE by one reverse scan per sequence (see [`scan_sequence`]), in parallel across sequences.
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
                let (adv, ret) = (&mut adv[a - base..b - base], &mut ret[a - base..b - base]);
                let (r, v) = (&rewards[a..b], &values[a..b]);
                if let Some(first) = scan_sequence(r, v, g, gl, adv) {
                    ret.iter_mut()
                        .zip(adv.iter())
                        .zip(v)
                        .for_each(|((o, &x), &v)| *o = x + v);
                    // A non-finite reward or value poisons the sequence's first advantage.
                    finite &= first.is_finite();
                }
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

/// One sequence: `adv[t] = delta_t + c * adv[t+1]` with `c = gamma * lam`, returning `adv[0]`
/// (`None` if empty). The deltas are computed first in a loop free of dependencies; the scan then
/// advances four tokens per multiply-add on its critical path: with `carry = adv[t+1]`,
/// `adv[t-k] = sum_{j<=k} c^j delta_{t-k+j} + c^(k+1) carry`, whose partial sums do not wait for
/// `carry`. (Rounding differs from the one-token recurrence by a few ulps.)
fn scan_sequence<F: Real>(r: &[F], v: &[F], g: F, c: F, adv: &mut [F]) -> Option<F> {
    let n = r.len();
    let last = n.checked_sub(1)?;
    for t in 0..last {
        adv[t] = r[t] + g * v[t + 1] - v[t];
    }
    adv[last] = r[last] - v[last];
    let (c2, c3) = (c * c, c * c * c);
    let c4 = c2 * c2;
    let mut carry = F::ZERO;
    let mut end = n;
    while end >= 4 {
        let d = &mut adv[end - 4..end];
        let (d0, d1, d2, d3) = (d[0], d[1], d[2], d[3]);
        let p3 = d3;
        let p2 = d2 + c * d3;
        let p1 = d1 + c * d2 + c2 * d3;
        let p0 = d0 + c * d1 + c2 * d2 + c3 * d3;
        d[3] = p3 + c * carry;
        d[2] = p2 + c2 * carry;
        d[1] = p1 + c3 * carry;
        d[0] = p0 + c4 * carry;
        carry = d[0];
        end -= 4;
    }
    for t in (0..end).rev() {
        adv[t] = adv[t] + c * carry;
        carry = adv[t];
    }
    Some(carry)
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
            for (t, out) in adv.iter_mut().enumerate().take(b).skip(a) {
                // Direct sum over the future deltas: A_t = sum_l (gamma lam)^l delta_{t+l}.
                *out = (t..b)
                    .enumerate()
                    .map(|(l, u)| {
                        let next = if u + 1 < b { v[u + 1] } else { 0.0 };
                        (gamma * lam).powi(l as i32) * (r[u] + gamma * next - v[u])
                    })
                    .sum();
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
