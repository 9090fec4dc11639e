use asyppo_core::groups::GroupBaseline;
use asyppo_core::Real;
use numpy::{Element, Ix1, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, check_fits, describe, floats, slice, slice_mut, try_borrow, Floats};
use crate::error::{choice_error, type_error, IntoPyResult};

fn run_group<'py, F: Real + Element>(
    py: Python<'py>,
    scores: &[F],
    ids: &[i64],
    how: GroupBaseline,
    eps: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let out = PyArray1::<F>::zeros(py, scores.len(), false);
    {
        let mut o = out.readwrite();
        let o = slice_mut(&mut o);
        py.detach(|| asyppo_core::groups::group_advantages(scores, ids, how, eps, o))
            .into_py_result()?;
    }
    Ok(out.into_any())
}

/// Per-sequence group-baseline advantages; see `asyppo.engine.group_advantages`.
#[pyfunction]
#[pyo3(signature = (scores, group_ids, how = "grpo", eps = 1e-6))]
pub fn group_advantages<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    group_ids: &Bound<'py, PyAny>,
    how: &str,
    eps: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let how = match how {
        "grpo" => GroupBaseline::Grpo,
        "drgrpo" => GroupBaseline::DrGrpo,
        "rloo" => GroupBaseline::Rloo,
        other => return Err(choice_error("how", other, &["grpo", "drgrpo", "rloo"])),
    };
    let ids = borrow::<i64, Ix1>(group_ids, "group_ids", "a 1-D int64 array")?;
    let ids = slice(&ids, "group_ids")?;
    match floats::<Ix1>(scores, "scores", "a 1-D float32 or float64 array")? {
        Floats::F32(a) => run_group(py, slice(&a, "scores")?, ids, how, eps),
        Floats::F64(a) => run_group(py, slice(&a, "scores")?, ids, how, eps),
    }
}

fn run_broadcast<'py, T: Element + Copy + Send + Sync>(
    py: Python<'py>,
    per_seq: &Bound<'py, PyAny>,
    offsets: &[i64],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(arr) = try_borrow::<T, Ix1>(per_seq, "per_seq")? else {
        return Ok(None);
    };
    let values = slice(&arr, "per_seq")?;
    let n_tokens = offsets.last().map_or(0, |&last| last.max(0) as u128);
    check_fits::<T>("offsets", n_tokens)?;
    let out = py
        .detach(|| asyppo_core::groups::broadcast_to_tokens(values, offsets))
        .into_py_result()?;
    Ok(Some(PyArray1::from_vec(py, out).into_any()))
}

/// Repeat each sequence's value over its tokens; see `asyppo.engine.broadcast_to_tokens`.
#[pyfunction]
pub fn broadcast_to_tokens<'py>(
    py: Python<'py>,
    per_seq: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let offsets = borrow::<i64, Ix1>(offsets, "offsets", "a 1-D int64 array")?;
    let offsets = slice(&offsets, "offsets")?;
    if let Some(out) = run_broadcast::<f32>(py, per_seq, offsets)? {
        return Ok(out);
    }
    if let Some(out) = run_broadcast::<f64>(py, per_seq, offsets)? {
        return Ok(out);
    }
    if let Some(out) = run_broadcast::<i64>(py, per_seq, offsets)? {
        return Ok(out);
    }
    if let Some(out) = run_broadcast::<bool>(py, per_seq, offsets)? {
        return Ok(out);
    }
    Err(type_error(
        "per_seq",
        "a 1-D float32, float64, int64 or bool array",
        describe(per_seq),
    ))
}
