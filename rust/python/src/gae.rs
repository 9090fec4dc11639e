use asyppo_core::Real;
use numpy::{Element, Ix1, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, floats, slice, slice_mut, Floats};
use crate::error::{type_error, IntoPyResult};

const FLOATS: &str = "a 1-D float32 or float64 array";

fn run<'py, F: Real + Element>(
    py: Python<'py>,
    rewards: &[F],
    values: &[F],
    offsets: &[i64],
    gamma: f64,
    lam: f64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let adv = PyArray1::<F>::zeros(py, rewards.len(), false);
    let ret = PyArray1::<F>::zeros(py, rewards.len(), false);
    {
        let (mut a, mut r) = (adv.readwrite(), ret.readwrite());
        let (a, r) = (slice_mut(&mut a), slice_mut(&mut r));
        py.detach(|| asyppo_core::gae::gae(rewards, values, offsets, gamma, lam, a, r))
            .into_py_result()?;
    }
    Ok((adv.into_any(), ret.into_any()))
}

/// GAE over a packed batch; see `asyppo.engine.gae`.
#[pyfunction]
#[pyo3(signature = (rewards, values, offsets, gamma = 1.0, lam = 1.0))]
pub fn gae<'py>(
    py: Python<'py>,
    rewards: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    gamma: f64,
    lam: f64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let offsets = borrow::<i64, Ix1>(offsets, "offsets", "a 1-D int64 array")?;
    let offsets = slice(&offsets, "offsets")?;
    match (
        floats::<Ix1>(rewards, "rewards", FLOATS)?,
        floats::<Ix1>(values, "values", FLOATS)?,
    ) {
        (Floats::F32(r), Floats::F32(v)) => run(
            py,
            slice(&r, "rewards")?,
            slice(&v, "values")?,
            offsets,
            gamma,
            lam,
        ),
        (Floats::F64(r), Floats::F64(v)) => run(
            py,
            slice(&r, "rewards")?,
            slice(&v, "values")?,
            offsets,
            gamma,
            lam,
        ),
        _ => Err(type_error(
            "values",
            "the dtype of rewards",
            "a different float dtype",
        )),
    }
}
