"""HF generator: packed output, n samples per prompt, stop at EOS, greedy determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo.generation import HFGenerator, SamplingParams, left_pad, pack_responses
from transformers import LlamaConfig, LlamaForCausalLM

EOS, PAD = 1, 0


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        eos_token_id=EOS, pad_token_id=PAD, bos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def test_pack_responses_cuts_after_first_eos_and_keeps_unfinished_rows_whole() -> None:
    responses = np.array([[5, 1, 0, 0], [6, 7, 8, 9], [1, 1, 1, 1]])
    ids, offsets, finished = pack_responses(responses, EOS)
    assert offsets.tolist() == [0, 2, 6, 7]
    assert ids.tolist() == [5, 1, 6, 7, 8, 9, 1]
    assert finished.tolist() == [True, False, True]


def test_left_pad_aligns_prompts_to_the_right() -> None:
    ids, mask = left_pad([[3, 4, 5], [6]], PAD)
    assert ids.tolist() == [[3, 4, 5], [PAD, PAD, 6]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_left_pad_rounds_the_width_up_to_a_bucket() -> None:
    ids, mask = left_pad([[3, 4, 5], [6]], PAD, multiple_of=4)
    assert ids.tolist() == [[PAD, 3, 4, 5], [PAD, PAD, PAD, 6]]
    assert mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]


def test_left_pad_rejects_an_empty_prompt() -> None:
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        left_pad([[3], []], PAD)


def test_generate_returns_n_packed_responses_per_prompt(model: LlamaForCausalLM) -> None:
    generator = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD)
    out = generator.generate([[3, 4, 5], [6, 7]], SamplingParams(temperature=1.0, max_new_tokens=5, n=3))
    assert out.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(out.offsets) == 7 and out.offsets[-1] == len(out.token_ids)
    assert (out.lengths >= 1).all() and (out.lengths <= 5).all()
    # A response ends at its first EOS or runs to the length limit.
    for i in range(6):
        body = out.response(i)[:-1]
        assert EOS not in body.tolist()
        assert out.finished[i] == (out.response(i)[-1] == EOS)
        assert out.finished[i] or out.lengths[i] == 5


def test_greedy_generation_is_deterministic_and_batch_independent(model: LlamaForCausalLM) -> None:
    generator = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    both = generator.generate([[3, 4, 5], [6]], greedy)
    alone = generator.generate([[6]], greedy)
    assert both.response(1).tolist() == alone.response(0).tolist()


def test_small_batch_size_splits_calls_without_changing_the_layout(model: LlamaForCausalLM) -> None:
    greedy = SamplingParams(temperature=0.0, max_new_tokens=4, n=2)
    one = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD).generate([[3], [4], [5]], greedy)
    split = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, batch_size=2).generate(
        [[3], [4], [5]], greedy
    )
    assert one.offsets.tolist() == split.offsets.tolist()
    assert one.token_ids.tolist() == split.token_ids.tolist()


def test_sync_weights_copies_a_state_dict(model: LlamaForCausalLM) -> None:
    clone = LlamaForCausalLM(model.config)
    generator = HFGenerator(clone, eos_token_id=EOS, pad_token_id=PAD)
    generator.sync_weights(model)
    for a, b in zip(clone.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_sampling_params_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="n must be"):
        SamplingParams(n=0)


def test_the_static_cache_generates_what_the_dynamic_one_does(model: LlamaForCausalLM) -> None:
    # On a GPU the static cache is what transformers compiles; here it runs uncompiled, with the
    # prompts padded to a 64-token bucket, and must not change a greedy answer.
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6, n=2)
    prompts = [[3, 4, 5], [6], [7, 8]]
    dynamic = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, static_cache=False)
    static = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, static_cache=True)
    assert not HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD).static_cache  # off on a CPU
    a, b = dynamic.generate(prompts, greedy), static.generate(prompts, greedy)
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    np.testing.assert_array_equal(a.offsets, b.offsets)


def generate_counting_widths(
    model: LlamaForCausalLM, prompts: list[list[int]], n: int
) -> tuple[list[int], list[list[list[int]]]]:
    """Greedy generation of ``prompts``, ``n`` samples each, in one call: the input widths of the
    model's forward passes, and each prompt's samples beside its answer when generated alone."""
    generator = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, static_cache=False)
    widths: list[int] = []
    hook = model.register_forward_hook(
        lambda _m, _a, kwargs, _o: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        shared = generator.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=6, n=n))
    finally:
        hook.remove()
    answers = []
    for i, prompt in enumerate(prompts):
        alone = generator.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=6)).response(0).tolist()
        answers.append([alone, *(shared.response(n * i + j).tolist() for j in range(n))])
    return widths, answers


def test_the_samples_of_a_prompt_share_one_prefill_and_greedy_answers_do_not_change(
    model: LlamaForCausalLM,
) -> None:
    widths, answers = generate_counting_widths(model, [[3, 4, 5, 9], [6], [7, 8]], n=3)
    assert widths[:2] == [3, 1]  # the 3 distinct prompts but their last column, then that column
    for alone, *samples in answers:
        assert all(sample == alone for sample in samples)


@pytest.mark.parametrize("n", [1, 2])
def test_prompts_that_begin_alike_share_one_prefill_of_their_beginning(model: LlamaForCausalLM, n: int) -> None:
    """Few-shot prompts: the preamble every prompt shares runs once for all, then each prompt's
    own tokens but its last, then that column; greedy answers do not change."""
    preamble = [3, 4, 5, 9, 10]
    widths, answers = generate_counting_widths(model, [preamble + [6], preamble + [7, 8, 11], preamble + [12, 13]], n)
    longest = len(preamble) + 3
    assert widths[:3] == [len(preamble), longest - 1 - len(preamble), 1]
    for alone, *samples in answers:
        assert all(sample == alone for sample in samples)
