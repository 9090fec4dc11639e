"""The common beginning of left-padded prompts: its length against a plain-Python reference, and
a prompt pass that runs it once scoring as the full pass does."""

from __future__ import annotations

from functools import partial

import torch
from asyppo.generation import left_pad
from asyppo.models import position_ids_from_mask
from asyppo.models.shared_prefix import cached_logits, common_prefix_length, prompt_pass
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

PAD = 0


def reference_prefix_length(prompts: list[list[int]]) -> int:
    """Leading tokens all prompts share, leaving each at least one of its own; 0 below two prompts."""
    if len(prompts) < 2:
        return 0
    shared = 0
    while all(len(p) > shared + 1 for p in prompts) and len({p[shared] for p in prompts}) == 1:
        shared += 1
    return shared


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=5),
    st.lists(st.lists(st.integers(1, 3), min_size=0, max_size=4), min_size=1, max_size=5),
)
def test_common_prefix_length_matches_the_reference(preamble: list[int], tails: list[list[int]]) -> None:
    prompts = [preamble + tail for tail in tails if preamble + tail]
    if not prompts:
        return
    ids, mask = left_pad(prompts, PAD)
    assert common_prefix_length(ids, mask) == reference_prefix_length(prompts)


def test_common_prefix_length_edge_cases() -> None:
    cases = {
        ((5, 6, 7),): 0,  # one prompt
        ((5,), (5,)): 0,  # nothing left to keep
        ((5, 6, 7), (5, 6, 7)): 2,  # equal prompts keep their last token
        ((5, 6), (4, 6)): 0,  # differ at once
        ((5, 6, 7, 8), (5, 6, 9)): 2,  # padded to different columns
    }
    for prompts, expected in cases.items():
        ids, mask = left_pad([list(p) for p in prompts], PAD)
        assert common_prefix_length(ids, mask) == expected, prompts


def test_a_prompt_pass_over_the_shared_prefix_scores_as_the_full_pass() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, pad_token_id=PAD,
    )
    model = LlamaForCausalLM(config).eval()
    prompts = [[3, 4, 5, 6, 9], [3, 4, 5, 6, 10, 11, 12], [3, 4, 5, 6, 7, 8]]
    ids, mask = left_pad(prompts, PAD)
    positions = position_ids_from_mask(mask)
    forward = partial(cached_logits, model)
    prefix = common_prefix_length(ids, mask)
    assert prefix == 4
    step = torch.tensor([[13], [14], [15]])
    scores = []
    with torch.no_grad():
        for prefix_run in (0, prefix):
            first, cache, cached_mask = prompt_pass(forward, ids, mask, positions, 1, prefix=prefix_run)
            # the next token continues the cache with its mask
            continued_mask = torch.cat([cached_mask, torch.ones(3, 1, dtype=mask.dtype)], dim=1)
            second, _ = forward(step, continued_mask, mask.sum(dim=1, keepdim=True), cache, 1)
            scores.append((first, second))
    assert cached_mask[:, :prefix].all() and cached_mask.sum(dim=1).tolist() == [len(p) for p in prompts]
    for shared, full in zip(scores[1], scores[0], strict=True):
        torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
