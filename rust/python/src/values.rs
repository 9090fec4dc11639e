use asyppo_core::values::Aggregate;
use asyppo_core::Real;
use numpy::{Element, Ix2, PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{floats, slice, slice_mut, Floats};
use crate::error::{choice_error, IntoPyResult};

fn run<'py, F: Real + Element>(
    py: Python<'py>,
    values: &[F],
    n_critics: usize,
    how: Aggregate,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let n_tokens = values.len().checked_div(n_critics).unwrap_or(0);
    let value = PyArray1::<F>::zeros(py, n_tokens, false);
    let std = PyArray1::<F>::zeros(py, n_tokens, false);
    {
        let (mut v, mut s) = (value.readwrite(), std.readwrite());
        let (v, s) = (slice_mut(&mut v), slice_mut(&mut s));
        py.detach(|| asyppo_core::values::aggregate_values(values, n_critics, how, v, s))
            .into_py_result()?;
    }
    Ok((value.into_any(), std.into_any()))
}

/// Mean (or min) and population std over critics; see `asyppo.engine.aggregate_values`.
#[pyfunction]
#[pyo3(signature = (values, how = "mean"))]
pub fn aggregate_values<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    how: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let how = match how {
        "mean" => Aggregate::Mean,
        "min" => Aggregate::Min,
        other => return Err(choice_error("how", other, &["mean", "min"])),
    };
    let expected = "a 2-D float32 or float64 array (n_critics, n_tokens)";
    match floats::<Ix2>(values, "values", expected)? {
        Floats::F32(a) => run(py, slice(&a, "values")?, a.shape()[0], how),
        Floats::F64(a) => run(py, slice(&a, "values")?, a.shape()[0], how),
    }
}
