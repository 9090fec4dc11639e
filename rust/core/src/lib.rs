//! `asyppo-core`: the CPU kernels of the asyppo data engine, as plain functions over slices.
//!
//! Every kernel works on *packed ragged batches*: one flat array of `T` tokens plus
//! `offsets[n_seq + 1]` (`offsets[0] == 0`, non-decreasing, `offsets[n_seq] == T`), so no scan
//! ever touches padding. The crate knows nothing of Python; `asyppo-python` binds it as
//! `asyppo._core`. Kernels validate their inputs and return [`EngineError`] instead of panicking.
//!
//! The algorithm these kernels serve is Asymmetric PPO (arXiv 2510.01656, Algorithm 1).

pub mod batching;
mod dispatch;
pub mod error;
pub mod gae;
pub mod groups;
pub mod masks;
pub mod real;
pub mod rng;
pub mod segments;
pub mod shard;
pub mod values;
pub mod whiten;

pub use error::{EngineError, Result};
pub use real::Real;
