//! `asyppo._core`: thin PyO3 bindings of `asyppo-core`.
//!
//! Each module mirrors one module of the core crate and only validates and converts arguments,
//! releases the GIL around the kernel, and maps errors (see `error.rs`). The public, documented
//! API is the Python facade `asyppo.engine`; this module is its private back end.

use pyo3::prelude::*;

mod arrays;
mod batching;
mod error;
mod gae;
mod groups;
mod masks;
mod shard;
mod values;
mod whiten;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gae::gae, m)?)?;
    m.add_function(wrap_pyfunction!(values::aggregate_values, m)?)?;
    m.add_function(wrap_pyfunction!(shard::shard_groups, m)?)?;
    m.add_function(wrap_pyfunction!(masks::percentile_masks, m)?)?;
    m.add_function(wrap_pyfunction!(groups::group_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(groups::broadcast_to_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(whiten::masked_whiten, m)?)?;
    m.add_function(wrap_pyfunction!(batching::pack_microbatches, m)?)?;
    m.add_function(wrap_pyfunction!(batching::balanced_partition, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
