//! Run-time choice of an AVX2 build of a kernel's inner loop.

/// Defines `fn $name`, which runs `$portable` (an `#[inline(always)]` function with the same
/// generics and parameters) compiled for AVX2 when the CPU has it, and as built otherwise. The
/// loop is written once, in portable Rust; in the AVX2 copy the compiler vectorises it over
/// 8 `f32` lanes instead of 4.
///
/// ```text
/// avx2_dispatch! {
///     /// Docs of the dispatching function.
///     fn kernel<F: Real>(xs: &[F], out: &mut [F]) -> bool = kernel_portable;
/// }
/// ```
macro_rules! avx2_dispatch {
    (
        $(#[$doc:meta])*
        fn $name:ident<$($gen:ident: $bound:path),*>
            ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $portable:ident;
    ) => {
        $(#[$doc])*
        fn $name<$($gen: $bound,)*>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2<$($gen: $bound,)*>($($arg: $ty),*) $(-> $ret)? {
                    $portable::<$($gen,)*>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2::<$($gen,)*>($($arg),*) };
                }
            }
            $portable::<$($gen,)*>($($arg),*)
        }
    };
}

pub(crate) use avx2_dispatch;
