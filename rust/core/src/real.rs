//! The float types the kernels accept (`f32`, `f64`) behind one small trait.

use std::fmt::{Debug, Display};
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::error::{EngineError, Result};

/// A float element type. `order_key` maps a value to an unsigned integer whose order is the
/// float order (with `-0.0 == 0.0`), which lets the percentile masks radix-select on integers.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Debug
    + Display
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// Number of significant bits of `order_key` (32 for `f32`, 64 for `f64`).
    const KEY_BITS: u32;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `self as i32` (truncating, saturating): one vector instruction for `f32`.
    fn to_i32(self) -> i32;
    fn is_finite(self) -> bool;
    fn sqrt(self) -> Self;
    fn order_key(self) -> u64;
}

macro_rules! impl_real {
    ($t:ty, $bits:ty, $n:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const KEY_BITS: u32 = $n;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn to_i32(self) -> i32 {
                self as i32
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn order_key(self) -> u64 {
                // Adding +0.0 turns -0.0 into +0.0 so that the two zeros tie, as they compare.
                let bits = (self + 0.0).to_bits();
                let sign = 1 << ($n - 1);
                (if bits & sign != 0 { !bits } else { bits | sign }) as u64
            }
        }
    };
}

impl_real!(f32, u32, 32);
impl_real!(f64, u64, 64);

/// `Err(NonFinite)` naming the first non-finite element of `xs`, if there is one.
pub fn check_finite<F: Real>(arg: &'static str, xs: &[F]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(EngineError::NonFinite {
            arg,
            index,
            value: format!("{}", xs[index]),
        }),
    }
}

/// `Err` unless `x` is a finite number in `[lo, hi]`.
pub fn check_unit_range(arg: &'static str, x: f64, lo: f64, hi: f64) -> Result<()> {
    if x.is_finite() && (lo..=hi).contains(&x) {
        Ok(())
    } else {
        Err(EngineError::range(
            arg,
            format!("a finite number in [{lo}, {hi}]"),
            x,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_follows_float_order() {
        let xs = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            0.0,
            1e-30,
            2.0,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(w[0].order_key() < w[1].order_key(), "{} vs {}", w[0], w[1]);
        }
        assert_eq!((-0.0f64).order_key(), 0.0f64.order_key());
        assert_eq!((-0.0f32).order_key(), 0.0f32.order_key());
    }

    #[test]
    fn order_key_fits_key_bits() {
        assert!(f32::MAX.order_key() < 1 << 32);
    }
}
