//! Aggregation of the mini-critics' values per token (arXiv 2510.01656, Algorithm 1; step 4 of
//! `docs/algorithm.md`).

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, Real};

/// How the critics' values are combined into the value that drives GAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean,
    Min,
}

const CHUNK: usize = 1 << 14;

/// Per-token aggregate value and population std over `M` critics.
///
/// `values` is row-major `[M, T]` (`values.len() == M * T`); `value` and `std` have length `T`.
/// `value_t = mean_m V_m(t)` (or `min_m`), `std_t = sqrt(mean_m (V_m(t) - mean_m V_m(t))^2)`
/// (ddof = 0; for M = 2 this is `|V_1 - V_2| / 2`). Two passes over the critics per token chunk,
/// chunks in parallel.
///
/// Errors: `n_critics == 0`, `values.len()` not `n_critics * T`, non-finite values.
pub fn aggregate_values<F: Real>(
    values: &[F],
    n_critics: usize,
    how: Aggregate,
    value: &mut [F],
    std: &mut [F],
) -> Result<()> {
    if n_critics == 0 {
        return Err(EngineError::shape(
            "values",
            "at least one critic (n_critics >= 1)",
            "0 rows",
        ));
    }
    let t = value.len();
    if values.len() != n_critics * t || std.len() != t {
        return Err(EngineError::shape(
            "values",
            format!("{n_critics} * {t} elements (n_critics, n_tokens)"),
            values.len(),
        ));
    }
    let m_inv = F::ONE / F::from_f64(n_critics as f64);
    let all_finite = value
        .par_chunks_mut(CHUNK)
        .zip(std.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, (val, sd))| {
            let (start, len) = (c * CHUNK, val.len());
            let rows = || (0..n_critics).map(move |m| &values[m * t + start..m * t + start + len]);
            // Element-wise passes over a cache-resident chunk, one row at a time: each loop is a
            // plain zip over slices, which the compiler vectorises.
            val.copy_from_slice(rows().next().expect("n_critics >= 1"));
            for row in rows().skip(1) {
                val.iter_mut()
                    .zip(row)
                    .for_each(|(acc, &v)| *acc = *acc + v);
            }
            val.iter_mut().for_each(|acc| *acc = *acc * m_inv);
            sd.fill(F::ZERO);
            for row in rows() {
                sd.iter_mut()
                    .zip(row)
                    .zip(val.iter())
                    .for_each(|((acc, &v), &mean)| {
                        let d = v - mean;
                        *acc = *acc + d * d;
                    });
            }
            sd.iter_mut().for_each(|acc| *acc = (*acc * m_inv).sqrt());
            if how == Aggregate::Min {
                val.copy_from_slice(rows().next().expect("n_critics >= 1"));
                for row in rows().skip(1) {
                    val.iter_mut()
                        .zip(row)
                        .for_each(|(acc, &v)| *acc = if v < *acc { v } else { *acc });
                }
            }
            sd.iter().fold(true, |ok, x| ok & x.is_finite())
        })
        .reduce(|| true, |x, y| x & y);
    if !all_finite {
        check_finite("values", values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_critics_std_is_half_the_gap() {
        let values = [1.0f32, 2.0, 3.0, 5.0, 2.0, 0.0];
        let (mut v, mut s) = (vec![0.0; 3], vec![0.0; 3]);
        aggregate_values(&values, 2, Aggregate::Mean, &mut v, &mut s).unwrap();
        assert_eq!(v, vec![3.0, 2.0, 1.5]);
        assert_eq!(s, vec![2.0, 0.0, 1.5]);
        aggregate_values(&values, 2, Aggregate::Min, &mut v, &mut s).unwrap();
        assert_eq!(v, vec![1.0, 2.0, 0.0]);
    }

    #[test]
    fn zero_critics_is_rejected() {
        assert!(aggregate_values::<f64>(&[], 0, Aggregate::Mean, &mut [], &mut []).is_err());
    }

    #[test]
    fn infinite_value_is_rejected() {
        let err = aggregate_values(
            &[1.0f64, f64::INFINITY],
            1,
            Aggregate::Mean,
            &mut [0.0; 2],
            &mut [0.0; 2],
        );
        assert!(matches!(
            err,
            Err(EngineError::NonFinite {
                arg: "values",
                index: 1,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn matches_per_token_formula(m in 1usize..5, t in 0usize..40_000, seed in any::<u64>()) {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let values: Vec<f64> = (0..m * t).map(|_| rng.next_f64()).collect();
            let (mut v, mut s) = (vec![0.0; t], vec![0.0; t]);
            aggregate_values(&values, m, Aggregate::Mean, &mut v, &mut s).unwrap();
            for j in (0..t).step_by(97) {
                let col: Vec<f64> = (0..m).map(|i| values[i * t + j]).collect();
                let mean = col.iter().sum::<f64>() / m as f64;
                let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / m as f64;
                prop_assert!((v[j] - mean).abs() < 1e-12);
                prop_assert!((s[j] - var.sqrt()).abs() < 1e-12);
            }
        }
    }
}
