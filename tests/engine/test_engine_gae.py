"""engine.gae against a per-timestep Python reference over the packed layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo import engine
from hypothesis import given
from hypothesis import strategies as st


def reference_gae(r: np.ndarray, v: np.ndarray, offsets: np.ndarray, gamma: float, lam: float):
    adv = np.zeros(len(r), dtype=np.float64)
    for s in range(len(offsets) - 1):
        a, b = offsets[s], offsets[s + 1]
        last = 0.0
        for t in reversed(range(a, b)):
            next_v = v[t + 1] if t + 1 < b else 0.0
            last = r[t] + gamma * next_v - v[t] + gamma * lam * last
            adv[t] = last
    return adv, adv + v


def ragged(rng: np.random.Generator, n_seq: int, max_len: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(rng.integers(0, max_len + 1, n_seq))]).astype(np.int64)


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.99, 0.95), (0.0, 0.5), (1.0, 0.0)])
def test_gae_matches_reference_on_random_ragged_batch(gamma: float, lam: float) -> None:
    rng = np.random.default_rng(0)
    offsets = ragged(rng, 50, 40)
    r = rng.normal(size=offsets[-1]).astype(np.float32)
    v = rng.normal(size=offsets[-1]).astype(np.float32)
    adv, ret = engine.gae(r, v, offsets, gamma=gamma, lam=lam)
    ref_adv, ref_ret = reference_gae(
        r.astype(np.float64), v.astype(np.float64), offsets, gamma, lam
    )
    assert adv.dtype == np.float32 and ret.dtype == np.float32
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-4)


def test_gae_runs_in_float64_when_given_float64() -> None:
    rng = np.random.default_rng(1)
    offsets = ragged(rng, 10, 30)
    r, v = rng.normal(size=(2, offsets[-1]))
    adv, ret = engine.gae(r, v, offsets, gamma=0.9, lam=0.8)
    ref_adv, ref_ret = reference_gae(r, v, offsets, 0.9, 0.8)
    assert adv.dtype == np.float64
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-12, atol=1e-12)


def test_gae_mixed_float_dtypes_run_in_float64() -> None:
    adv, _ = engine.gae(np.ones(3, np.float32), np.zeros(3, np.float64), [0, 3])
    assert adv.dtype == np.float64


def test_gae_of_empty_batch_is_empty() -> None:
    adv, ret = engine.gae(np.zeros(0, np.float32), np.zeros(0, np.float32), np.array([0]))
    assert adv.shape == (0,) and ret.shape == (0,)


def test_gae_of_length_one_sequences_is_reward_minus_value() -> None:
    r = np.array([1.0, 2.0, 3.0], np.float32)
    v = np.array([0.5, 0.5, 4.0], np.float32)
    adv, ret = engine.gae(r, v, [0, 1, 2, 3], gamma=0.9, lam=0.9)
    np.testing.assert_allclose(adv, r - v)
    np.testing.assert_allclose(ret, r)


def test_gae_value_does_not_leak_across_sequence_boundary() -> None:
    # The last token of sequence 0 must bootstrap from 0, not from sequence 1's first value.
    adv, _ = engine.gae(np.zeros(2, np.float32), np.array([0.0, 100.0], np.float32), [0, 1, 2])
    assert adv[0] == 0.0


@given(
    lengths=st.lists(st.integers(0, 12), min_size=0, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_gae_with_gamma_lam_one_is_reward_to_go_minus_value(lengths: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    r, v = rng.normal(size=(2, offsets[-1]))
    adv, ret = engine.gae(r, v, offsets)
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        to_go = np.cumsum(r[a:b][::-1])[::-1]
        np.testing.assert_allclose(adv[a:b], to_go - v[a:b], atol=1e-9)
        np.testing.assert_allclose(ret[a:b], to_go, atol=1e-9)


def test_gae_returns_torch_for_torch_input() -> None:
    r = torch.tensor([1.0, 0.0, 2.0])
    adv, ret = engine.gae(r, torch.zeros(3), torch.tensor([0, 2, 3]))
    assert isinstance(adv, torch.Tensor) and isinstance(ret, torch.Tensor)
    torch.testing.assert_close(ret, torch.tensor([1.0, 0.0, 2.0]))


def test_gae_rejects_nan_reward_naming_it() -> None:
    r = np.array([0.0, np.nan], np.float32)
    with pytest.raises(ValueError, match=r"rewards: expected finite values, found NaN at index 1"):
        engine.gae(r, np.zeros(2, np.float32), [0, 2])


def test_gae_rejects_infinite_value_naming_it() -> None:
    with pytest.raises(ValueError, match="values: expected finite"):
        engine.gae(np.zeros(2), np.array([np.inf, 0.0]), [0, 2])


@pytest.mark.parametrize(
    "offsets,match",
    [
        ([1, 3], r"offsets\[0\] == 0"),
        ([0, 2, 1, 3], "non-decreasing"),
        ([0, 2], "number of tokens"),
        ([], "at least one"),
    ],
)
def test_gae_rejects_bad_offsets(offsets: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        engine.gae(np.zeros(3), np.zeros(3), np.array(offsets, dtype=np.int64))


def test_gae_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="values: expected length 3"):
        engine.gae(np.zeros(3), np.zeros(2), [0, 3])


@pytest.mark.parametrize(
    "name,kwargs",
    [("gamma", {"gamma": 1.5}), ("lam", {"lam": -0.1}), ("gamma", {"gamma": float("nan")})],
)
def test_gae_rejects_gamma_lam_outside_unit_interval(name: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"^{name}: expected a finite number in"):
        engine.gae(np.zeros(3), np.zeros(3), [0, 3], **kwargs)


def test_gae_rejects_integer_rewards() -> None:
    with pytest.raises(TypeError, match="rewards: expected dtype float32 or float64, got int64"):
        engine.gae(np.zeros(3, np.int64), np.zeros(3), [0, 3])


def test_gae_rejects_float_offsets() -> None:
    with pytest.raises(TypeError, match="offsets: expected an integer dtype"):
        engine.gae(np.zeros(3), np.zeros(3), np.array([0.0, 3.0]))
