//! Masked whitening of a per-token array (as in PPO implementations since Ziegler et al. 2019).

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::real::{check_finite, Real};

/// Added to the variance before the reciprocal square root, as in TRL and verl.
pub const WHITEN_EPS: f64 = 1e-8;

const CHUNK: usize = 1 << 16;

/// `out = (x - mean) / sqrt(var + 1e-8)`, plus `mean` back when `shift_mean` is false, where
/// `mean` and the unbiased `var` are taken over the elements with `mask == true` (f64
/// accumulation; one pass for the statistics, one for the output). Every element is transformed, masked or not.
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
    // One pass: per chunk, the count, mean and sum of squared deviations of the masked elements
    // (the deviations from the chunk's own mean, while the chunk is in cache), merged across
    // chunks with Chan et al.'s pairwise update (1979), which keeps float64 accuracy.
    let (finite, count, mean, m2) = x
        .par_chunks(CHUNK)
        .zip(mask.par_chunks(CHUNK))
        .map(|(xs, ms)| {
            let (finite, count, sum) = masked_lane_sums(xs, ms, |v| v);
            let mean = if count > 0 { sum / count as f64 } else { 0.0 };
            let m2 = masked_lane_sums(xs, ms, |v| (v - mean) * (v - mean)).2;
            (finite, count, mean, m2)
        })
        .reduce(
            || (true, 0, 0.0, 0.0),
            |(fa, na, ma, m2a), (fb, nb, mb, m2b)| {
                let n = na + nb;
                if n == 0 {
                    return (fa & fb, 0, 0.0, 0.0);
                }
                let delta = mb - ma;
                let (na, nb, nf) = (na as f64, nb as f64, n as f64);
                (
                    fa & fb,
                    n,
                    ma + delta * nb / nf,
                    m2a + m2b + delta * delta * na * nb / nf,
                )
            },
        );
    if !finite {
        check_finite("x", x)?;
    }
    if count < 2 {
        return Err(EngineError::range(
            "mask",
            "at least 2 selected elements (unbiased variance)",
            count,
        ));
    }
    let ss = m2;
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

/// Over the elements with `mask` true: whether all of `xs` are finite, their count, and the sum
/// of `f(x as f64)`, in independent lanes so that the loop vectorises (a float sum in a single
/// accumulator cannot be reordered by the compiler).
fn masked_lane_sums<F: Real>(
    xs: &[F],
    mask: &[bool],
    f: impl Fn(f64) -> f64,
) -> (bool, usize, f64) {
    const LANES: usize = 8;
    let (mut fin, mut cnt, mut acc) = ([true; LANES], [0usize; LANES], [0.0f64; LANES]);
    let (mut xl, mut ml) = (xs.chunks_exact(LANES), mask.chunks_exact(LANES));
    for (x, m) in (&mut xl).zip(&mut ml) {
        for j in 0..LANES {
            fin[j] &= x[j].is_finite();
            cnt[j] += m[j] as usize;
            acc[j] += if m[j] { f(x[j].to_f64()) } else { 0.0 };
        }
    }
    let (mut finite, mut count, mut sum) = (
        fin.iter().all(|&f| f),
        cnt.iter().sum::<usize>(),
        acc.iter().sum::<f64>(),
    );
    for (x, &m) in xl.remainder().iter().zip(ml.remainder()) {
        finite &= x.is_finite();
        count += m as usize;
        sum += if m { f(x.to_f64()) } else { 0.0 };
    }
    (finite, count, sum)
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
