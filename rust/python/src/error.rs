//! The single place where Rust errors become Python exceptions.

use asyppo_core::EngineError;
use numpy::{AsSliceError, BorrowError};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::PyErr;

/// Every core error is a bad value: `ValueError` with the core's message (it names the argument).
pub fn value_error(err: EngineError) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// A wrong type or dtype for `arg`.
pub fn type_error(arg: &str, expected: &str, got: impl std::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("{arg}: expected {expected}, got {got}"))
}

/// An array that cannot be viewed as one contiguous slice.
pub fn layout_error(arg: &str, err: AsSliceError) -> PyErr {
    PyValueError::new_err(format!("{arg}: expected a C-contiguous array ({err})"))
}

/// An array that is already borrowed mutably elsewhere.
pub fn borrow_error(arg: &str, err: BorrowError) -> PyErr {
    PyValueError::new_err(format!("{arg}: array is in use ({err})"))
}

/// A string option outside its allowed set, listed as Python would print them.
pub fn choice_error(arg: &str, got: &str, valid: &[&str]) -> PyErr {
    let valid: Vec<String> = valid.iter().map(|v| format!("'{v}'")).collect();
    PyValueError::new_err(format!(
        "{arg}: expected one of [{}], got '{got}'",
        valid.join(", ")
    ))
}

pub trait IntoPyResult<T> {
    fn into_py_result(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for asyppo_core::Result<T> {
    fn into_py_result(self) -> pyo3::PyResult<T> {
        self.map_err(value_error)
    }
}
