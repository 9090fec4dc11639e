use asyppo_core::Real;
use numpy::{Element, Ix1, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, floats, slice, slice_mut, Floats};
use crate::error::IntoPyResult;

fn run<'py, F: Real + Element>(
    py: Python<'py>,
    x: &[F],
    mask: &[bool],
    shift_mean: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let out = PyArray1::<F>::zeros(py, x.len(), false);
    {
        let mut o = out.readwrite();
        let o = slice_mut(&mut o);
        py.detach(|| asyppo_core::whiten::masked_whiten(x, mask, shift_mean, o))
            .into_py_result()?;
    }
    Ok(out.into_any())
}

/// Whitening with statistics over the masked elements; see `asyppo.engine.masked_whiten`.
#[pyfunction]
#[pyo3(signature = (x, mask, shift_mean = true))]
pub fn masked_whiten<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    mask: &Bound<'py, PyAny>,
    shift_mean: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mask = borrow::<bool, Ix1>(mask, "mask", "a 1-D bool array")?;
    let mask = slice(&mask, "mask")?;
    match floats::<Ix1>(x, "x", "a 1-D float32 or float64 array")? {
        Floats::F32(a) => run(py, slice(&a, "x")?, mask, shift_mean),
        Floats::F64(a) => run(py, slice(&a, "x")?, mask, shift_mean),
    }
}
