use asyppo_core::shard::ShardMode;
use numpy::{Ix1, PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, check_fits, slice};
use crate::error::{choice_error, IntoPyResult};

/// Boolean `[n_critics, n_seq]` critic-to-sequence assignment; see `asyppo.engine.shard_groups`.
#[pyfunction]
#[pyo3(signature = (group_ids, n_critics, seed, mode = "disjoint"))]
pub fn shard_groups<'py>(
    py: Python<'py>,
    group_ids: &Bound<'py, PyAny>,
    n_critics: i64,
    seed: u64,
    mode: &str,
) -> PyResult<Bound<'py, PyArray2<bool>>> {
    let mode = match mode {
        "disjoint" => ShardMode::Disjoint,
        "shared" => ShardMode::Shared,
        "random" => ShardMode::Random,
        other => {
            return Err(choice_error(
                "mode",
                other,
                &["disjoint", "shared", "random"],
            ))
        }
    };
    let ids = borrow::<i64, Ix1>(group_ids, "group_ids", "a 1-D int64 array")?;
    let ids = slice(&ids, "group_ids")?;
    // The core refuses counts outside [1, MAX_CRITICS]; within them this is the output size.
    let rows = n_critics.clamp(0, asyppo_core::shard::MAX_CRITICS) as u128;
    check_fits::<bool>("n_critics", rows * ids.len() as u128)?;
    let out = py
        .detach(|| asyppo_core::shard::shard_groups(ids, n_critics, seed, mode))
        .into_py_result()?;
    // The core checked n_critics; the vector becomes the array's memory, without a copy.
    let n = ids.len();
    PyArray1::from_vec(py, out).reshape([n_critics as usize, n])
}
