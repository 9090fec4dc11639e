"""token_log_probs / entropy_from_logits: equal to the plain full-vocab reference, chunked in memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from asyppo.algos import entropy_from_logits, token_log_probs, token_log_probs_and_entropy
from torch.utils._python_dispatch import TorchDispatchMode

B, L, V = 2, 13, 50


def _logits(dtype: torch.dtype = torch.float32, requires_grad: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(B, L, V, generator=gen)).to(dtype)
    return x.requires_grad_(requires_grad)


def _labels() -> torch.Tensor:
    return torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(1))


def _reference_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _reference_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 4, 13, 100])
def test_log_probs_equal_the_full_log_softmax(chunk_size: int) -> None:
    logits, labels = _logits(), _labels()
    got = token_log_probs(logits, labels, chunk_size=chunk_size)
    assert got.shape == (B, L) and got.dtype == torch.float32
    assert torch.allclose(got, _reference_log_probs(logits, labels), atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 5, 13, 100])
def test_entropy_equals_the_full_softmax_entropy(chunk_size: int) -> None:
    logits = _logits()
    got = entropy_from_logits(logits, chunk_size)
    assert torch.allclose(got, _reference_entropy(logits), atol=1e-5)


def test_log_prob_gradient_equals_the_reference_gradient() -> None:
    logits, labels = _logits(requires_grad=True), _labels()
    weights = torch.randn(B, L, generator=torch.Generator().manual_seed(2))
    (token_log_probs(logits, labels, chunk_size=4) * weights).sum().backward()
    ref_logits = _logits(requires_grad=True)
    (_reference_log_probs(ref_logits, labels) * weights).sum().backward()
    assert logits.grad is not None and ref_logits.grad is not None
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-5)


def test_entropy_gradient_equals_the_reference_gradient() -> None:
    logits = _logits(requires_grad=True)
    entropy_from_logits(logits, 4).sum().backward()
    ref_logits = _logits(requires_grad=True)
    _reference_entropy(ref_logits).sum().backward()
    assert logits.grad is not None and ref_logits.grad is not None
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-5)


def test_one_pass_log_probs_and_entropy_equal_the_separate_functions() -> None:
    logits, labels = _logits(), _labels()
    log_probs, entropy = token_log_probs_and_entropy(logits, labels, chunk_size=4)
    assert torch.allclose(log_probs, _reference_log_probs(logits, labels), atol=1e-5)
    assert torch.allclose(entropy, _reference_entropy(logits), atol=1e-5)


def test_one_pass_gradient_equals_the_reference_gradient() -> None:
    logits, labels = _logits(requires_grad=True), _labels()
    log_probs, entropy = token_log_probs_and_entropy(logits, labels, chunk_size=5)
    (log_probs.sum() + 0.1 * entropy.sum()).backward()
    ref_logits = _logits(requires_grad=True)
    ref = (
        _reference_log_probs(ref_logits, labels).sum() + 0.1 * _reference_entropy(ref_logits).sum()
    )
    ref.backward()
    assert logits.grad is not None and ref_logits.grad is not None
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-5)


def test_empty_sequence_gives_empty_outputs() -> None:
    logits = torch.zeros(2, 0, V)
    log_probs, entropy = token_log_probs_and_entropy(logits, torch.zeros(2, 0, dtype=torch.long))
    assert log_probs.shape == entropy.shape == (2, 0)
    assert entropy_from_logits(logits).shape == (2, 0)


def test_temperature_scales_the_logits_before_the_softmax() -> None:
    logits, labels = _logits(), _labels()
    got_lp = token_log_probs(logits, labels, chunk_size=4, temperature=0.7)
    got_h = entropy_from_logits(logits, 4, temperature=0.7)
    assert torch.allclose(got_lp, _reference_log_probs(logits / 0.7, labels), atol=1e-5)
    assert torch.allclose(got_h, _reference_entropy(logits / 0.7), atol=1e-5)


def test_bfloat16_logits_are_scored_in_float32() -> None:
    logits, labels = _logits(torch.bfloat16), _labels()
    got = token_log_probs(logits, labels)
    assert got.dtype == torch.float32
    assert torch.allclose(got, _reference_log_probs(logits, labels), atol=1e-5)


def test_negative_labels_score_zero() -> None:
    labels = _labels()
    labels[0, 3] = -100
    got = token_log_probs(_logits(), labels)
    assert got[0, 3].item() == 0.0


def test_labels_shape_must_match_logits() -> None:
    with pytest.raises(ValueError, match="labels shape"):
        token_log_probs(_logits(), _labels()[:, :-1])


class _LargestFloatAllocation(TorchDispatchMode):
    """Records the element count of the largest float32 tensor any op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            # views share memory with their base: count fresh float32 storage only
            fresh = isinstance(tensor, torch.Tensor) and tensor._base is None
            if fresh and tensor.dtype == torch.float32:
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("fn", ["log_probs", "entropy", "both"])
def test_forward_never_allocates_more_than_one_chunk_of_float32_logits(fn: str) -> None:
    # bf16 logits that need grad, with a temperature: the float32 upcast, the scaling and the
    # softmax must each exist one chunk at a time.
    logits, labels, chunk = _logits(torch.bfloat16, requires_grad=True), _labels(), 3
    with _LargestFloatAllocation() as probe:
        if fn == "log_probs":
            token_log_probs(logits, labels, chunk_size=chunk, temperature=0.9)
        elif fn == "entropy":
            entropy_from_logits(logits, chunk, temperature=0.9)
        else:
            token_log_probs_and_entropy(logits, labels, chunk_size=chunk, temperature=0.9)
    assert 0 < probe.largest <= B * chunk * V
