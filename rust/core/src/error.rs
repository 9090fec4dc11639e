//! The one error type of the crate; the bindings map every variant to a Python `ValueError`.

use thiserror::Error;

/// An input the kernels cannot work with. Each variant names the argument at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// An argument has the wrong length or shape.
    #[error("{arg}: expected {expected}, got {got}")]
    Shape {
        arg: &'static str,
        expected: String,
        got: String,
    },
    /// The offsets array is not a valid CSR index of the token array.
    #[error("offsets: {0}")]
    Offsets(String),
    /// A float array holds NaN or +-inf where only finite numbers make sense.
    #[error("{arg}: expected finite values, found {value} at index {index}")]
    NonFinite {
        arg: &'static str,
        index: usize,
        value: String,
    },
    /// A scalar or element lies outside its allowed range.
    #[error("{arg}: expected {expected}, got {got}")]
    OutOfRange {
        arg: &'static str,
        expected: String,
        got: String,
    },
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// A vector of `len` copies of `value`, or an error naming `arg` (the argument that set the
/// length) when the allocator refuses it, instead of the process abort of `vec![value; len]`.
/// (With Linux overcommit a request can still be granted and the process killed later, when the
/// pages are touched; requests beyond RAM plus swap are refused here.)
pub fn try_vec<T: Clone>(len: usize, value: T, arg: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        EngineError::range(
            arg,
            "an output that fits in memory",
            format!("{len} elements"),
        )
    })?;
    v.resize(len, value);
    Ok(v)
}

impl EngineError {
    pub(crate) fn shape(arg: &'static str, expected: impl ToString, got: impl ToString) -> Self {
        Self::Shape {
            arg,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub(crate) fn range(arg: &'static str, expected: impl ToString, got: impl ToString) -> Self {
        Self::OutOfRange {
            arg,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
