//! Masked whitening of a per-token array (as in PPO implementations since Ziegler et al. 2019).

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, Real};

/// Added to the variance before the reciprocal square root, as in TRL and verl.
pub const WHITEN_EPS: f64 = 1e-8;

const CHUNK: usize = 1 << 16;

/// `out = (x - mean) / sqrt(var + 1e-8)`, plus `mean` back when `shift_mean` is false, where
/// `mean` and the unbiased `var` are taken over the elements with `mask == true` (f64
/// accumulation, two passes). Every element is transformed, masked or not.
///
/// Errors: length mismatch, fewer than two masked elements, non-finite `x`.
pub fn masked_whiten<F: Real>(
    x: &[F],
    mask: &[bool],
    shift_mean: bool,
    out: &mut [F],
) -> Result<()> {
    let n = x.len();
    if mask.len() != n {
        return Err(EngineError::shape(
            "mask",
            format!("length {n} (as x)"),
            mask.len(),
        ));
    }
    if out.len() != n {
        return Err(EngineError::shape("out", format!("length {n}"), out.len()));
    }
    check_finite("x", x)?;
    let (count, sum) = x
        .par_chunks(CHUNK)
        .zip(mask.par_chunks(CHUNK))
        .map(|(xs, ms)| {
            xs.iter()
                .zip(ms)
                .filter(|(_, &m)| m)
                .fold((0usize, 0.0f64), |(c, s), (v, _)| (c + 1, s + v.to_f64()))
        })
        .reduce(|| (0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if count < 2 {
        return Err(EngineError::range(
            "mask",
            "at least 2 selected elements (unbiased variance)",
            count,
        ));
    }
    let mean = sum / count as f64;
    let ss: f64 = x
        .par_chunks(CHUNK)
        .zip(mask.par_chunks(CHUNK))
        .map(|(xs, ms)| {
            xs.iter()
                .zip(ms)
                .filter(|(_, &m)| m)
                .map(|(v, _)| (v.to_f64() - mean).powi(2))
                .sum::<f64>()
        })
        .sum();
    let scale = 1.0 / (ss / (count as f64 - 1.0) + WHITEN_EPS).sqrt();
    let (m, s) = (F::from_f64(mean), F::from_f64(scale));
    let back = if shift_mean { F::ZERO } else { m };
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, xs)| {
            o.iter_mut()
                .zip(xs)
                .for_each(|(o, &v)| *o = (v - m) * s + back);
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_elements_do_not_move_the_statistics() {
        let x = [1.0f64, 3.0, 1000.0];
        let mut out = [0.0; 3];
        masked_whiten(&x, &[true, true, false], true, &mut out).unwrap();
        let scale = 1.0 / (2.0f64 + WHITEN_EPS).sqrt();
        assert!((out[0] + scale).abs() < 1e-12 && (out[1] - scale).abs() < 1e-12);
        assert!((out[2] - 998.0 * scale).abs() < 1e-9);
    }

    #[test]
    fn keeping_the_mean_adds_it_back() {
        let mut out = [0.0f32; 2];
        masked_whiten(&[2.0, 4.0], &[true, true], false, &mut out).unwrap();
        assert!((out[0] + out[1] - 6.0).abs() < 1e-5);
    }

    #[test]
    fn one_masked_element_is_rejected() {
        assert!(masked_whiten(&[1.0f32, 2.0], &[true, false], true, &mut [0.0; 2]).is_err());
    }
}
