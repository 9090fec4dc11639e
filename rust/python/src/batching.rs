use asyppo_core::segments::Groups;
use numpy::{Ix1, PyArray1};
use pyo3::prelude::*;

use crate::arrays::{borrow, slice};
use crate::error::IntoPyResult;

/// One int64 array per list.
fn to_arrays<'py>(py: Python<'py>, lists: Groups) -> Vec<Bound<'py, PyArray1<i64>>> {
    lists
        .iter()
        .map(|list| PyArray1::from_iter(py, list.iter().map(|&i| i as i64)))
        .collect()
}

/// Micro-batches of sequence indices under a token budget; see `asyppo.engine.pack_microbatches`.
#[pyfunction]
#[pyo3(signature = (lengths, max_tokens, padded = false, prompt_lengths = None))]
pub fn pack_microbatches<'py>(
    py: Python<'py>,
    lengths: &Bound<'py, PyAny>,
    max_tokens: i64,
    padded: bool,
    prompt_lengths: Option<&Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    let lengths = borrow::<i64, Ix1>(lengths, "lengths", "a 1-D int64 array")?;
    let lengths = slice(&lengths, "lengths")?;
    let prompts = prompt_lengths
        .map(|p| borrow::<i64, Ix1>(p, "prompt_lengths", "a 1-D int64 array"))
        .transpose()?;
    let prompts = prompts
        .as_ref()
        .map(|p| slice(p, "prompt_lengths"))
        .transpose()?;
    let parts = py
        .detach(|| asyppo_core::batching::pack_microbatches(lengths, max_tokens, padded, prompts))
        .into_py_result()?;
    Ok(to_arrays(py, parts))
}

/// Balanced split of sequence indices (longest processing time first); see
/// `asyppo.engine.balanced_partition`.
#[pyfunction]
pub fn balanced_partition<'py>(
    py: Python<'py>,
    lengths: &Bound<'py, PyAny>,
    n_parts: i64,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    let lengths = borrow::<i64, Ix1>(lengths, "lengths", "a 1-D int64 array")?;
    let lengths = slice(&lengths, "lengths")?;
    let parts = py
        .detach(|| asyppo_core::batching::balanced_partition(lengths, n_parts))
        .into_py_result()?;
    Ok(to_arrays(py, parts))
}
