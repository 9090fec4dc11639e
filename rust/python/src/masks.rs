use std::mem::MaybeUninit;

use asyppo_core::masks::Scope;
use asyppo_core::Real;
use numpy::{Element, Ix1, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{borrow, floats, slice, Floats};
use crate::error::{choice_error, IntoPyResult};

fn run<'py, F: Real + Element>(
    py: Python<'py>,
    std: &[F],
    low: f64,
    high: f64,
    scope: Scope<'_>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let n = std.len();
    // Fresh arrays without numpy's zero-fill: the kernel overwrites every element.
    // SAFETY: bool is plain data, so the uninitialised arrays are safe to drop; they are read
    // only after the kernel has written them.
    let (adv, ent) = unsafe {
        (
            PyArray1::<bool>::new(py, n, false),
            PyArray1::<bool>::new(py, n, false),
        )
    };
    {
        // SAFETY: each array is fresh, contiguous, holds `n` bools (numpy allocates at least one
        // byte, so the pointer is non-null) and is referenced nowhere else until this scope
        // ends; `MaybeUninit` asks nothing of the contents, and on `Err` they are never read.
        let (a, e) = unsafe {
            (
                std::slice::from_raw_parts_mut(adv.data().cast::<MaybeUninit<bool>>(), n),
                std::slice::from_raw_parts_mut(ent.data().cast::<MaybeUninit<bool>>(), n),
            )
        };
        py.detach(|| asyppo_core::masks::percentile_masks_uninit(std, low, high, scope, a, e))
            .into_py_result()?;
    }
    Ok((adv.into_any(), ent.into_any()))
}

fn required<'a, 'py>(
    obj: Option<&'a Bound<'py, PyAny>>,
    arg: &str,
    scope: &str,
) -> PyResult<&'a Bound<'py, PyAny>> {
    obj.ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("{arg}: required when scope={scope:?}"))
    })
}

/// Exact-count lowest/highest-std token masks; see `asyppo.engine.percentile_masks`.
#[pyfunction]
#[pyo3(signature = (std, low = 0.2, high = 0.2, offsets = None, group_ids = None, scope = "batch"))]
pub fn percentile_masks<'py>(
    py: Python<'py>,
    std: &Bound<'py, PyAny>,
    low: f64,
    high: f64,
    offsets: Option<&Bound<'py, PyAny>>,
    group_ids: Option<&Bound<'py, PyAny>>,
    scope: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let offsets_arr = match scope {
        "batch" => None,
        "sequence" | "group" => Some(borrow::<i64, Ix1>(
            required(offsets, "offsets", scope)?,
            "offsets",
            "a 1-D int64 array",
        )?),
        other => {
            return Err(choice_error(
                "scope",
                other,
                &["batch", "group", "sequence"],
            ))
        }
    };
    let ids_arr = match scope {
        "group" => Some(borrow::<i64, Ix1>(
            required(group_ids, "group_ids", scope)?,
            "group_ids",
            "a 1-D int64 array",
        )?),
        _ => None,
    };
    let scope = match (&offsets_arr, &ids_arr) {
        (None, _) => Scope::Batch,
        (Some(o), None) => Scope::Sequence {
            offsets: slice(o, "offsets")?,
        },
        (Some(o), Some(g)) => Scope::Group {
            offsets: slice(o, "offsets")?,
            group_ids: slice(g, "group_ids")?,
        },
    };
    let expected = "a 1-D float32 or float64 array";
    match floats::<Ix1>(std, "std", expected)? {
        Floats::F32(a) => run(py, slice(&a, "std")?, low, high, scope),
        Floats::F64(a) => run(py, slice(&a, "std")?, low, high, scope),
    }
}
