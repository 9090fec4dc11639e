//! The float types the kernels accept (`f32`, `f64`) behind one small trait.

use std::fmt::{Debug, Display};
use std::ops::{Add, Div, Mul, Neg, Shr, Sub};

use crate::error::{EngineError, Result};

/// A float element type. `order_key` maps a value to an unsigned integer of the same width whose
/// order is the float order (with `-0.0 == 0.0`), so the percentile masks select on integers.
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
    const INFINITY: Self;
    /// `u32` for `f32`, `u64` for `f64`.
    type Key: Ord
        + Copy
        + Default
        + Send
        + Sync
        + Debug
        + Into<u64>
        + TryFrom<u64>
        + Sub<Output = Self::Key>
        + Shr<u32, Output = Self::Key>;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn sqrt(self) -> Self;
    fn order_key(self) -> Self::Key;
    /// The inverse of `order_key` (`-0.0` comes back as `0.0`).
    fn from_order_key(key: Self::Key) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $bits:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = <$t>::INFINITY;
            type Key = $bits;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
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
            fn order_key(self) -> $bits {
                // Adding +0.0 turns -0.0 into +0.0 so that the two zeros tie, as they compare.
                let bits = (self + 0.0).to_bits();
                let sign = 1 << (<$bits>::BITS - 1);
                if bits & sign != 0 {
                    !bits
                } else {
                    bits | sign
                }
            }
            #[inline]
            fn from_order_key(key: $bits) -> Self {
                let sign = 1 << (<$bits>::BITS - 1);
                <$t>::from_bits(if key & sign != 0 { key ^ sign } else { !key })
            }
        }
    };
}

impl_real!(f32, u32);
impl_real!(f64, u64);

/// `Err(NonFinite)` naming the first non-finite element of `xs`, if there is one.
pub fn check_finite<F: Real>(arg: &'static str, xs: &[F]) -> Result<()> {
    // Blocks tested without an early exit vectorise; only a block that fails is searched.
    const BLOCK: usize = 1024;
    let Some(block) = xs
        .chunks(BLOCK)
        .position(|b| !b.iter().fold(true, |ok, x| ok & x.is_finite()))
    else {
        return Ok(());
    };
    let start = block * BLOCK;
    let index = start + xs[start..].iter().position(|x| !x.is_finite()).unwrap_or(0);
    Err(EngineError::NonFinite {
        arg,
        index,
        value: format!("{}", xs[index]),
    })
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
    fn from_order_key_inverts_order_key() {
        for x in [f32::NEG_INFINITY, -3.5, -1e-30, 0.0, 1e-30, 2.0, f32::MAX] {
            assert_eq!(f32::from_order_key(x.order_key()).to_bits(), x.to_bits());
        }
        assert_eq!(f64::from_order_key((-0.0f64).order_key()).to_bits(), 0);
        assert_eq!(f64::from_order_key(1.5f64.order_key()), 1.5);
    }
}
