"""Generation with HF ``generate``: the CPU default (and the reference for other generators)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from transformers import (
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from asyppo.engine import offsets_from_lengths
from asyppo.generation.base import GenerationOutput, SamplingParams, pack_responses
from asyppo.models.critic import position_ids_from_mask
from asyppo.models.loading import kv_cache_keyword
from asyppo.models.shared_prefix import cached_logits, common_prefix_length, prompt_pass


def left_pad(
    prompts_token_ids: Sequence[Sequence[int]], pad_token_id: int, *, multiple_of: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts into ``input_ids`` int64 ``[P, L]`` and ``attention_mask`` int64 ``[P, L]``,
    ``L`` the longest prompt rounded up to a multiple of ``multiple_of``.

    Decoder-only generation needs left padding so every row's next token is at the last column.
    """
    if len(prompts_token_ids) == 0:
        raise ValueError("prompts_token_ids: expected at least one prompt, got none")
    lengths = np.fromiter((len(p) for p in prompts_token_ids), dtype=np.int64)
    if (lengths == 0).any():
        raise ValueError(f"prompts_token_ids: prompt {int(np.argmin(lengths))} is empty")
    width = -(-int(lengths.max()) // multiple_of) * multiple_of
    flat = np.fromiter((t for p in prompts_token_ids for t in p), dtype=np.int64, count=int(lengths.sum()))
    ids = np.full((len(lengths), width), pad_token_id, dtype=np.int64)
    valid = np.arange(width)[None, :] >= (width - lengths)[:, None]
    ids[valid] = flat
    return torch.from_numpy(ids), torch.from_numpy(valid.astype(np.int64))


def _has_stop(text: str, stop: Sequence[str]) -> bool:
    return any(s in text for s in stop)


def _texts(tokenizer: PreTrainedTokenizerBase, token_ids: list[list[int]]) -> list[str]:
    """The texts of token id lists, special tokens (EOS, padding) left out."""
    return tokenizer.batch_decode(token_ids, skip_special_tokens=True)


def stop_lengths(
    responses: Sequence[np.ndarray], stop: Sequence[str], tokenizer: PreTrainedTokenizerBase
) -> np.ndarray:
    """int64 ``[N]``: how many tokens of each response to keep so that it ends with the token that
    completes the first stop string of its text; -1 where its text holds none.

    A response's text is its decoding without special tokens (what the reward reads, and what vLLM
    matches stop strings on). Decoding more tokens appends text, so once a prefix's text holds a
    stop string every longer prefix's does, and the shortest such prefix is found by bisection: a
    few decodes per response, not one a token.
    """
    texts = _texts(tokenizer, [r.tolist() for r in responses])
    keep = np.full(len(texts), -1, dtype=np.int64)
    for i, text in enumerate(texts):
        if not _has_stop(text, stop):
            continue
        low, high = 1, len(responses[i])
        while low < high:
            mid = (low + high) // 2
            if _has_stop(_texts(tokenizer, [responses[i][:mid].tolist()])[0], stop):
                high = mid
            else:
                low = mid + 1
        keep[i] = low
    return keep


def cut_at_stop_strings(
    token_ids: np.ndarray,
    offsets: np.ndarray,
    finished: np.ndarray,
    stop: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed responses (``pack_responses``' layout) cut after the token that completes their first
    stop string (:func:`stop_lengths`); a response so cut is finished, like one that met EOS."""
    lengths = np.diff(offsets)
    keep = stop_lengths(np.split(token_ids, offsets[1:-1]), stop, tokenizer)
    stopped = keep >= 0
    new_lengths = np.where(stopped, keep, lengths)
    position = np.arange(len(token_ids)) - np.repeat(offsets[:-1], lengths)
    kept = position < np.repeat(new_lengths, lengths)
    return token_ids[kept], offsets_from_lengths(new_lengths), finished | stopped


class StopOnText(StoppingCriteria):
    """Ends a row of ``generate`` once its response text holds a stop string, so that a batch whose
    rows all stopped ends early (rows that ended are padded, as after EOS).

    Each step decodes only each row's newest tokens, as many as the longest stop string has UTF-8
    bytes plus one (so the string fits whole as long as each of its tokens adds a byte), and
    confirms a hit on the whole response: a row never ends before the exact cut
    (:func:`cut_at_stop_strings`, made after generation). A string the short decode misses (a
    tokenizer that decodes a window's first token differently) only costs that row its early end.
    ``prompt_width``: the columns of the padded prompts, where the responses begin.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.prompt_width = prompt_width
        self.window = max(len(s.encode("utf-8")) for s in self.stop) + 1

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: object
    ) -> torch.BoolTensor:
        responses = input_ids[:, self.prompt_width :]
        tails = _texts(self.tokenizer, responses[:, -self.window :].tolist())
        hits = [i for i, text in enumerate(tails) if _has_stop(text, self.stop)]
        done = torch.zeros(len(tails), dtype=torch.bool)
        if hits:
            whole = _texts(self.tokenizer, responses[hits].tolist())
            done[hits] = torch.tensor([_has_stop(text, self.stop) for text in whole])
        return done.to(input_ids.device)  # type: ignore[return-value]  # torch has no BoolTensor type


def prefill_shared_prompts(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[dict[str, Any], torch.Tensor]:
    """(``generate``'s keyword argument of a KV cache of every row's prompt but its last column,
    the attention mask to give ``generate`` with it): each run of equal rows prefilled once and
    its cache repeated to the run, and the beginning all distinct prompts share (e.g. few-shot
    examples) prefilled once for all (``models.shared_prefix.prompt_pass``, which orders the
    cache's columns prefix first, so the mask changes with it). ``({}, attention_mask)`` where no
    two neighbouring rows are equal and the prompts share no beginning.

    ``generate`` given this cache runs only the last column before decoding, so the n samples of a
    prompt share one prefill. Position ids count real tokens from 0 along the mask
    (``models.position_ids_from_mask``, ``generate``'s rule for real tokens; padding is masked),
    so the result equals a full prefill up to float rounding.
    """
    width = input_ids.shape[1]
    if width < 2:
        return {}, attention_mask
    rows = torch.cat([input_ids, attention_mask], dim=1)
    distinct, index = torch.unique_consecutive(rows, dim=0, return_inverse=True)
    # The prefix leaves each prompt its last token (run by generate) and the window a column.
    prefix = min(common_prefix_length(distinct[:, :width], distinct[:, width:]), width - 2)
    if len(distinct) == len(rows) and prefix == 0:
        return {}, attention_mask
    ids, mask = distinct[:, : width - 1], distinct[:, width : 2 * width - 1]
    positions = position_ids_from_mask(mask)
    _, cache, cached_mask = prompt_pass(partial(cached_logits, model), ids, mask, positions, 1, prefix=prefix)
    cache.batch_select_indices(index)
    return {kv_cache_keyword(model): cache}, torch.cat([cached_mask[index], attention_mask[:, -1:]], dim=1)


#: With a static KV cache, prompts are left-padded to a multiple of this many tokens, so that the
#: compiled decode step sees few distinct shapes (each new one recompiles).
STATIC_WIDTH_BUCKET = 64


class HFGenerator:
    """Batched sampling with ``model.generate``: left padding, n samples per prompt, stop at EOS
    and at the stop strings of :class:`~asyppo.generation.base.SamplingParams` (these need
    ``tokenizer``, to read the responses' text).

    The generator holds a reference to a causal LM; :meth:`sync_weights` points it at (or copies in)
    the actor's published weights. The n samples of a prompt share one prefill of the prompt
    and the beginning all prompts share runs once (:func:`prefill_shared_prompts`; not with the
    static cache, which ``generate`` allocates).
    ``batch_size`` caps the sequences (prompts x n samples) per ``generate`` call to bound memory.
    ``static_cache`` (None: on CUDA) preallocates the KV cache for the whole response
    (``cache_implementation="static"``), with which transformers compiles the decode step on a GPU
    (``torch.compile``): per-token Python and kernel-launch overhead, not compute, bounds small
    models there. Prompt widths are then bucketed (:data:`STATIC_WIDTH_BUCKET`). On a CPU it stays
    off by default: nothing is compiled there and the preallocated cache only costs memory.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        eos_token_id: int | list[int],
        pad_token_id: int,
        batch_size: int = 256,
        static_cache: bool | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self._static_cache = static_cache
        self.tokenizer = tokenizer

    @property
    def static_cache(self) -> bool:
        """Whether generation preallocates (and, on a GPU, compiles) the KV cache."""
        if self._static_cache is not None:
            return self._static_cache
        return next(self.model.parameters()).device.type == "cuda"

    def sync_weights(self, source: torch.nn.Module | Mapping[str, torch.Tensor]) -> bool:
        """Take the weights of ``source`` (a module or a state dict with this model's keys).

        Where every tensor already sits on this model's device with its dtype, the model's
        parameters become those tensors and True is returned: no copy, and later values written
        into them (e.g. the actor's shared-memory weight buffer) are used without a new call.
        Otherwise they are copied in (False).
        """
        if source is self.model:
            return True
        weights = source.state_dict() if isinstance(source, torch.nn.Module) else source
        own = self.model.state_dict()
        missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        if missing or unexpected:
            raise ValueError(f"weights: do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
        # A model built without weights (parameters on "meta", ``models.actor_skeleton``) takes the
        # tensors wherever they are.
        if all((t.is_meta or weights[k].device == t.device) and weights[k].dtype == t.dtype for k, t in own.items()):
            self.model.load_state_dict(weights, strict=True, assign=True)
            return True
        if any(t.is_meta for t in own.values()):
            raise ValueError("weights: this model has none yet; give tensors of its dtype to alias")
        with torch.no_grad():
            for name, tensor in own.items():
                tensor.copy_(weights[name])
        return False

    def _generation_config(self, sampling: SamplingParams) -> GenerationConfig:
        common = {
            "max_new_tokens": sampling.max_new_tokens,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "cache_implementation": "static" if self.static_cache else None,
        }
        if sampling.greedy:
            return GenerationConfig(do_sample=False, **common)
        return GenerationConfig(
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            **common,
        )

    @torch.no_grad()
    def generate(
        self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> GenerationOutput:
        if sampling.stop and self.tokenizer is None:
            raise ValueError("HFGenerator: stop strings need the tokenizer (HFGenerator(..., tokenizer=...))")
        reader = self.tokenizer if sampling.stop else None
        config = self._generation_config(sampling)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        # Repeat each prompt n times ourselves: HF refuses num_return_sequences > 1 when greedy.
        repeated = [p for p in prompts_token_ids for _ in range(sampling.n)]
        chunks = []
        try:
            for start in range(0, len(repeated), self.batch_size):
                input_ids, attention_mask = left_pad(
                    repeated[start : start + self.batch_size],
                    self.pad_token_id,
                    multiple_of=STATIC_WIDTH_BUCKET if self.static_cache else 1,
                )
                width = input_ids.shape[1]
                stopping = None
                if reader is not None:
                    stopping = StoppingCriteriaList([StopOnText(reader, sampling.stop, width)])
                input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
                prefilled: dict[str, Any] = {}
                if not self.static_cache:
                    prefilled, attention_mask = prefill_shared_prompts(self.model, input_ids, attention_mask)
                out = self.model.generate(  # type: ignore[operator]  # transformers types generate loosely
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    stopping_criteria=stopping,
                    **prefilled,
                )
                packed = pack_responses(out[:, width:].cpu().numpy(), self.eos_token_id)
                if reader is not None:
                    packed = cut_at_stop_strings(*packed, sampling.stop, reader)
                chunks.append(packed)
        finally:
            self.model.train(was_training)
        token_ids = np.concatenate([c[0] for c in chunks])
        lengths = np.concatenate([np.diff(c[1]) for c in chunks])
        offsets = offsets_from_lengths(lengths)
        return GenerationOutput(
            token_ids=token_ids,
            offsets=offsets,
            prompt_index=np.repeat(np.arange(len(prompts_token_ids), dtype=np.int64), sampling.n),
            finished=np.concatenate([c[2] for c in chunks]),
        )
