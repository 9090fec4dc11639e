use numpy::{Ix1, PyArray1};
use pyo3::prelude::*;

use crate::arrays::{borrow, slice};
use crate::error::IntoPyResult;

fn to_arrays<'py>(py: Python<'py>, parts: Vec<Vec<usize>>) -> Vec<Bound<'py, PyArray1<i64>>> {
    parts
        .into_iter()
        .map(|p| PyArray1::from_vec(py, p.into_iter().map(|i| i as i64).collect()))
        .collect()
}

/// Micro-batches of sequence indices under a token budget; see `asyppo.engine.pack_microbatches`.
#[pyfunction]
#[pyo3(signature = (lengths, max_tokens, padded = false))]
pub fn pack_microbatches<'py>(
    py: Python<'py>,
    lengths: &Bound<'py, PyAny>,
    max_tokens: i64,
    padded: bool,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    let lengths = borrow::<i64, Ix1>(lengths, "lengths", "a 1-D int64 array")?;
    let lengths = slice(&lengths, "lengths")?;
    let parts = py
        .detach(|| asyppo_core::batching::pack_microbatches(lengths, max_tokens, padded))
        .into_py_result()?;
    Ok(to_arrays(py, parts))
}

/// Karmarkar–Karp balanced split of sequence indices; see `asyppo.engine.balanced_partition`.
#[pyfunction]
pub fn balanced_partition<'py>(
    py: Python<'py>,
    lengths: &Bound<'py, PyAny>,
    n_parts: i64,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    let lengths = borrow::<i64, Ix1>(lengths, "lengths", "a 1-D int64 array")?;
    let lengths = slice(&lengths, "lengths")?;
    let n = usize::try_from(n_parts).unwrap_or(0);
    let parts = py
        .detach(|| asyppo_core::batching::balanced_partition(lengths, n))
        .into_py_result()?;
    Ok(to_arrays(py, parts))
}
