"""engine.masked_whiten against a numpy reference (unbiased variance over the masked elements)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo import engine


def reference(x: np.ndarray, mask: np.ndarray, shift_mean: bool) -> np.ndarray:
    sel = x[mask.astype(bool)].astype(np.float64)
    out = (x - sel.mean()) / np.sqrt(sel.var(ddof=1) + 1e-8)
    return out if shift_mean else out + sel.mean()


@pytest.mark.parametrize("shift_mean", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_whiten_matches_reference(shift_mean: bool, dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=100_000) * 3 + 2).astype(dtype)
    mask = rng.random(100_000) < 0.7
    out = engine.masked_whiten(x, mask, shift_mean=shift_mean)
    assert out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, reference(x, mask, shift_mean), rtol=tol, atol=tol)


def test_masked_out_values_do_not_change_the_statistics() -> None:
    x = np.array([1.0, 3.0, 1e6])
    out = engine.masked_whiten(x, np.array([True, True, False]))
    np.testing.assert_allclose(out[:2], [-1 / np.sqrt(2 + 1e-8), 1 / np.sqrt(2 + 1e-8)])


def test_masked_whiten_keeps_padded_shape_and_accepts_float_masks() -> None:
    x = torch.randn(4, 6)
    mask = (torch.rand(4, 6) > 0.3).float()
    mask[0, :2] = 1.0
    out = engine.masked_whiten(x, mask)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 6)
    np.testing.assert_allclose(
        out.numpy(), reference(x.numpy(), mask.numpy(), True), rtol=1e-5, atol=1e-5
    )


def test_masked_whiten_rejects_fewer_than_two_masked_elements() -> None:
    with pytest.raises(ValueError, match="mask: expected at least 2 selected elements"):
        engine.masked_whiten(np.zeros(3), np.array([False, True, False]))


def test_masked_whiten_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\)"):
        engine.masked_whiten(np.zeros(3), np.ones(4, bool))


def test_masked_whiten_rejects_nan() -> None:
    with pytest.raises(ValueError, match="x: expected finite values"):
        engine.masked_whiten(np.array([0.0, np.nan, 1.0]), np.ones(3, bool))
