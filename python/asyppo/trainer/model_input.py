"""Model input for the trainer's forward passes over a rollout ``engine.TrajectoryBuffer``.

A selection of sequences becomes a :class:`ModelInput` in the buffer's ``prompt_side="left"``
layout: prompts left-padded to a common width P and responses right-padded to width R, so that
every response starts at column P. The logits (or values) that score response token j of every
row then sit in the one contiguous slice ``[P-1+j]`` of the sequence axis: no per-row gather, and
the LM head can skip the prompt (``logits_to_keep``). Position ids count only real tokens, so left
padding does not shift them. :func:`micro_batches` splits a batch so that each such input stays
within a token budget.

Prompt-prefix reuse: the sequences of one prompt group share their prompt, so
:func:`with_shared_prompts` marks the rows whose prompts repeat (and the beginning every distinct
prompt shares, e.g. a few-shot preamble) and :func:`prefix_outputs` runs each distinct prompt
once (their common beginning once for all, ``models.shared_prefix``), repeats its KV cache to the
rows that continue it and runs only the response tokens on it; :func:`grouped_micro_batches`
keeps a group's sequences together and :func:`model_inputs` yields a batch's micro-batches either way. Under autograd the repeat is an
index, so each row's gradient flows back into the one prompt pass: the update's gradient is the
full pass's, to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

import numpy as np
import torch

from asyppo.engine import TrajectoryBuffer
from asyppo.models.shared_prefix import CachedForward, common_prefix_length, prompt_pass

#: The buffer layout of every model input the trainer builds.
LAYOUT: Final = "left"


@dataclass(frozen=True)
class SharedPrompts:
    """Rows of a :class:`ModelInput` that share prompts: ``rows`` int64 ``[U]``, one row of each
    distinct prompt, ``index`` int64 ``[B]``, the position in ``rows`` of each row's prompt, and
    ``prefix``, how many leading tokens all U distinct prompts share
    (``models.shared_prefix.common_prefix_length``; 0: none)."""

    rows: torch.Tensor
    index: torch.Tensor
    prefix: int = 0


@dataclass(frozen=True)
class ModelInput:
    """Padded model input for B sequences.

    ``input_ids``/``attention_mask``/``position_ids`` int64 ``[B, P+R]``; ``response_mask`` bool
    ``[B, R]`` (True on real response tokens, row-major order = packed order); ``labels`` int64
    ``[B, R]`` (the response tokens, 0 on padding); ``prompt_width`` P; ``shared`` (on the
    device, like the inputs) the repeated prompts a no-grad pass may run once
    (:func:`with_shared_prompts`), None: one full pass.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    labels: torch.Tensor
    prompt_width: int
    shared: SharedPrompts | None = None

    @property
    def response_width(self) -> int:
        return self.labels.shape[1]

    @property
    def forward_passes(self) -> int:
        """Model passes that score this input: 1 without shared prompts; with them, as
        :func:`prefix_outputs` runs them: the prompts' common prefix (where there is one), the
        prompts, and the responses (a response width of 1 needs only the prompts)."""
        if self.shared is None:
            return 1
        return 1 + (self.shared.prefix > 0) + (self.response_width > 1)

    def response_slice(self, per_position: torch.Tensor) -> torch.Tensor:
        """From ``[B, P+R, ...]`` outputs, the ``[B, R, ...]`` ones that score each response token."""
        start = self.prompt_width - 1
        return per_position[:, start : start + self.response_width]

    def to_packed(self, padded: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` -> ``[T]`` in packed order."""
        return padded[self.response_mask]

    def from_packed(self, packed: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[T]`` packed values -> ``[B, R]`` padded with zeros."""
        out = torch.zeros(self.response_mask.shape, dtype=dtype)
        out[self.response_mask] = torch.as_tensor(packed).to(dtype)
        return out


def model_input(batch: TrajectoryBuffer, pad_token_id: int, device: torch.device | str = "cpu") -> ModelInput:
    """All of ``batch`` as prompt-left-padded, response-right-padded rows (see module doc).

    Raises ``ValueError`` for an empty batch or a sequence with an empty prompt (its first
    response token would have no position to be predicted from).
    """
    if len(batch) == 0:
        raise ValueError("model_input: the batch holds no sequences")
    prompt_lengths = batch.prompt_lengths
    if (prompt_lengths == 0).any():
        raise ValueError(f"model_input: sequence {int(np.argmin(prompt_lengths))} has an empty prompt")
    padded = batch.to_padded(pad_token_id, fields=[], prompt_side=LAYOUT)
    width_p = int(prompt_lengths.max())
    response_mask = padded["response_mask"][:, width_p:] > 0
    labels = np.where(response_mask, padded["input_ids"][:, width_p:], 0)
    return ModelInput(
        input_ids=torch.from_numpy(padded["input_ids"]).to(device),
        attention_mask=torch.from_numpy(padded["attention_mask"]).to(device),
        position_ids=torch.from_numpy(padded["position_ids"]).to(device),
        response_mask=torch.from_numpy(response_mask),
        labels=torch.from_numpy(labels).to(device),
        prompt_width=width_p,
    )


def placeholder_input(pad_token_id: int, device: torch.device | str = "cpu") -> ModelInput:
    """One sequence of a one-token prompt and a one-token response, both ``pad_token_id``: the
    input of a pass whose output is unused, run by a data-parallel worker with nothing left to do
    while the others still run collective forward passes (ZeRO)."""
    placeholder = TrajectoryBuffer()
    placeholder.append([pad_token_id], [pad_token_id], group_id=0, reward=0.0)
    return model_input(placeholder, pad_token_id, device)


def with_shared_prompts(x: ModelInput) -> ModelInput:
    """``x`` with :attr:`ModelInput.shared` set when some rows repeat a prompt or the distinct
    prompts begin alike (and responses are not all empty); unchanged otherwise, where a full
    pass costs no more than prefix reuse.

    Prompts are compared as their left-padded ids and mask, so equal rows are equal prompts
    whatever their group ids say.
    """
    width_p = x.prompt_width
    prompts = torch.cat([x.input_ids[:, :width_p], x.attention_mask[:, :width_p]], dim=1)
    distinct, index = torch.unique(prompts, dim=0, return_inverse=True)
    prefix = common_prefix_length(distinct[:, :width_p], distinct[:, width_p:])
    if (len(distinct) == len(prompts) and prefix == 0) or x.response_width == 0:
        return x
    rows = torch.zeros(len(distinct), dtype=torch.int64, device=index.device).scatter_(
        0, index, torch.arange(len(index), device=index.device)
    )
    return replace(x, shared=SharedPrompts(rows=rows, index=index, prefix=prefix))


def prefix_outputs(x: ModelInput, forward: CachedForward) -> torch.Tensor:
    """``[B, R, ...]``: the outputs that score each response token, each distinct prompt run once
    (with or without autograd).

    Pass 1 runs the distinct prompts ``[U, P]`` (their common prefix once for all,
    ``models.shared_prefix.prompt_pass``); its last position scores response token 0 and its KV
    cache, repeated to the B rows (each row its own prompt's), is the past of pass 2, which runs
    response tokens ``0..R-2`` (their outputs score tokens ``1..R-1``; the last token scores
    nothing) with the attention mask of the cached prompt + response and positions continuing
    the prompt's. Prompts are left-padded to P, so every row's past has the same length. Equal to
    a full pass up to floating-point rounding; ``x.shared`` must be set.
    """
    assert x.shared is not None
    rows, index, width_p, width_r = x.shared.rows, x.shared.index, x.prompt_width, x.response_width
    prompts = [t[rows, :width_p] for t in (x.input_ids, x.attention_mask, x.position_ids)]
    first, cache, prompt_mask = prompt_pass(forward, *prompts, 1, prefix=x.shared.prefix)
    if width_r == 1:
        return first[index]
    cache.batch_select_indices(index)
    mask = torch.cat([prompt_mask[index], x.attention_mask[:, width_p:-1]], dim=1)
    rest, _ = forward(x.input_ids[:, width_p:-1], mask, x.position_ids[:, width_p:-1], cache, width_r - 1)
    return torch.cat([first[index], rest], dim=1)


def micro_batches(batch: TrajectoryBuffer, max_tokens: int) -> list[np.ndarray]:
    """Sequence indices of ``batch``'s micro-batches: each one's :func:`model_input` is
    ``[B, P + R]`` with ``B * (P + R) <= max_tokens`` (longest prompt P, longest response R)
    unless a single sequence is larger (``TrajectoryBuffer.microbatch_indices``, padded)."""
    return batch.microbatch_indices(max_tokens, padded=True, prompt_side=LAYOUT)


def grouped_micro_batches(batch: TrajectoryBuffer, max_tokens: int) -> list[np.ndarray]:
    """Micro-batches within the same budget as :func:`micro_batches`, filled in group order
    (next-fit over ``group_ids``), so that the sequences of a prompt group share micro-batches and
    :func:`prefix_outputs` runs their prompt once rather than once per micro-batch it lands in."""
    order = np.argsort(batch.group_ids, kind="stable")
    lengths = zip(batch.prompt_lengths[order].tolist(), batch.response_lengths[order].tolist())
    out, start, width_p, width_r = [], 0, 0, 0
    for i, (p, r) in enumerate(lengths):
        width_p, width_r = max(width_p, p), max(width_r, r)
        if i > start and (i - start + 1) * (width_p + width_r) > max_tokens:
            out.append(order[start:i])
            start, width_p, width_r = i, p, r
    return [*out, order[start:]] if len(order) else out


class MicroBatch(NamedTuple):
    """One micro-batch of a batch: its sequence ``index`` (int64 ``[B]``) in the batch, those
    ``sequences`` (``batch.select(index)``, with their token fields) and their model ``input``."""

    index: np.ndarray
    sequences: TrajectoryBuffer
    input: ModelInput


def model_inputs(
    batch: TrajectoryBuffer, max_tokens: int, pad_token_id: int, device: torch.device | str, *, reuse_prompts: bool
) -> Iterator[MicroBatch]:
    """``batch``'s micro-batches within ``max_tokens`` cells (:class:`MicroBatch`, each selected
    once). With ``reuse_prompts`` and some prompt group holding several sequences,
    they are :func:`grouped_micro_batches` and each input is marked by :func:`with_shared_prompts`
    (its scorer must handle ``x.shared``, e.g. with :func:`prefix_outputs`); otherwise they are
    :func:`micro_batches` and each input is one full pass."""
    reuse = reuse_prompts and len(np.unique(batch.group_ids)) < len(batch)
    indices = grouped_micro_batches(batch, max_tokens) if reuse else micro_batches(batch, max_tokens)
    for index in indices:
        sequences = batch.select(index)
        x = model_input(sequences, pad_token_id, device)
        yield MicroBatch(index, sequences, with_shared_prompts(x) if reuse else x)
