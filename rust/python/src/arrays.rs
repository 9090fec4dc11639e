//! Borrowing numpy arrays as slices, with errors that name the argument.

use numpy::ndarray::Dimension;
use numpy::{
    Element, PyArray, PyArrayMethods, PyReadonlyArray, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::error::{borrow_error, layout_error, type_error};

/// `ValueError` naming `arg` if an output of `elements` items of `T` would not fit in this
/// machine's physical memory. Checked before a kernel allocates an output whose size is not
/// bounded by its inputs' (`shard_groups`' `[M, N]`, `broadcast_to_tokens`' `[T]`): with
/// overcommit, such an allocation can be granted and the process killed when it is filled.
pub fn check_fits<T>(arg: &str, elements: u128) -> PyResult<()> {
    let bytes = elements.saturating_mul(std::mem::size_of::<T>() as u128);
    let memory = physical_memory();
    if bytes <= memory {
        return Ok(());
    }
    Err(pyo3::exceptions::PyValueError::new_err(format!(
        "{arg}: expected an output that fits in memory ({memory} bytes), got {elements} elements \
         of {} bytes",
        std::mem::size_of::<T>()
    )))
}

/// Physical memory in bytes (`sysconf`), or `u128::MAX` where it cannot be read.
fn physical_memory() -> u128 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads configuration values.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page_size > 0 {
            return pages as u128 * page_size as u128;
        }
    }
    u128::MAX
}

/// How an object that is not the expected array is described in a `TypeError`.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "an object".into()),
    }
}

/// A read-only borrow of `obj` as an array of `T` with dimension `D`, or `None` if it is not one.
pub fn try_borrow<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
) -> PyResult<Option<PyReadonlyArray<'py, T, D>>> {
    match obj.cast::<PyArray<T, D>>() {
        Ok(a) => a.try_readonly().map(Some).map_err(|e| borrow_error(arg, e)),
        Err(_) => Ok(None),
    }
}

/// A read-only borrow of `obj` as an array of exactly `T` and dimension `D`, else `TypeError`.
pub fn borrow<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    try_borrow(obj, arg)?.ok_or_else(|| type_error(arg, expected, describe(obj)))
}

/// The contiguous slice behind a borrowed array.
pub fn slice<'a, T: Element, D: Dimension>(
    a: &'a PyReadonlyArray<'_, T, D>,
    arg: &str,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|e| layout_error(arg, e))
}

/// The two float element types the kernels run in.
pub enum Floats<'py, D: Dimension> {
    F32(PyReadonlyArray<'py, f32, D>),
    F64(PyReadonlyArray<'py, f64, D>),
}

/// Borrow `obj` as a float32 or float64 array of dimension `D`, else `TypeError`.
pub fn floats<'py, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<Floats<'py, D>> {
    if let Some(a) = try_borrow::<f32, D>(obj, arg)? {
        return Ok(Floats::F32(a));
    }
    if let Some(a) = try_borrow::<f64, D>(obj, arg)? {
        return Ok(Floats::F64(a));
    }
    Err(type_error(arg, expected, describe(obj)))
}

/// Fresh zero-filled output arrays are allocated by numpy (same allocator as the caller's arrays)
/// and written in place through this mutable slice.
pub fn slice_mut<'a, T: Element, D: Dimension>(
    a: &'a mut numpy::PyReadwriteArray<'_, T, D>,
) -> &'a mut [T] {
    a.as_slice_mut().expect("a fresh numpy array is contiguous")
}
