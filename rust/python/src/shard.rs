use asyppo_core::shard::ShardMode;
use numpy::{Ix1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, slice, slice_mut};
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
    let m = usize::try_from(n_critics).unwrap_or(0);
    let m_rows = if n_critics < 1 { 0 } else { m };
    let out = PyArray2::<bool>::zeros(py, [m_rows, ids.len()], false);
    {
        let mut o = out.readwrite();
        let o = slice_mut(&mut o);
        py.detach(|| asyppo_core::shard::shard_groups(ids, m, seed, mode, o))
            .into_py_result()?;
    }
    Ok(out)
}
