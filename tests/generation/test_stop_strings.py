"""Stop strings (``rollout.stop``): the HF generator against a token-by-token reference, the vLLM
sampling parameters, the config key, and the key's way through the rollout role, training's
sampling and eval."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from asyppo.config import ConfigError, TrainConfig, load_train_config
from asyppo.config.schema import RolloutConfig
from asyppo.engine import offsets_from_lengths
from asyppo.generation import GenerationOutput, HFGenerator, SamplingParams
from asyppo.generation.vllm import VLLMGenerator, vllm_sampling_kwargs
from asyppo.rewards import RewardOutput
from asyppo.runtime import InlineHandle
from asyppo.trainer.evaluate import evaluate
from asyppo.trainer.loop import Trainer
from asyppo.trainer.roles.rollout import RolloutRole
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, EOS = 0, 1
#: Pieces of one to three characters, decoded by plain concatenation, so that a stop string can
#: span tokens and end inside one.
VOCAB = [
    "<pad>", "<eos>", "<bos>", "a", "b", "c", "Q", ":", "\n", " ",
    "ab", "bc", "ca", "ba", "cb", "ac", "abc", "bca", "cab", "\n\n", "Q:", "a\n", "b:", " Q",
    ":a", "c ", "aQ", "bb", "cc", "aa", "\nb", "Q\n",
]
PROMPTS = [[3, 4, 5], [6, 7], [8], [9, 10, 11, 12], [13, 14], [15], [16, 17], [20]]
STOP = ("Q:a", "\n\nb", "b: b:")
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<pad>"))
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        eos_token_id=EOS, pad_token_id=PAD, bos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def generator(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> HFGenerator:
    return HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, tokenizer=tokenizer)


def text(tokenizer: PreTrainedTokenizerFast, tokens: Any) -> str:
    return tokenizer.batch_decode([list(tokens)], skip_special_tokens=True)[0]


def first_stop(tokenizer: PreTrainedTokenizerFast, response: np.ndarray, stop: tuple[str, ...]) -> int | None:
    """The reference: the fewest leading tokens whose text holds a stop string, one decode a token."""
    for k in range(1, len(response) + 1):
        if any(s in text(tokenizer, response[:k]) for s in stop):
            return k
    return None


def test_a_stopped_response_is_the_unstopped_one_up_to_the_token_that_completes_the_first_stop_string(
    generator: HFGenerator, tokenizer: PreTrainedTokenizerFast
) -> None:
    plain = generator.generate(PROMPTS, GREEDY)
    stopped = generator.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=16, stop=STOP))
    cuts = [first_stop(tokenizer, plain.response(i), STOP) for i in range(len(PROMPTS))]
    # What this batch covers (a check on the test's data, not on the generator): every row meets a
    # stop string before the budget, some inside a token (the kept text runs past the string),
    # some at a token's end.
    assert all(k is not None and k < plain.lengths[i] for i, k in enumerate(cuts)), cuts
    tails = [text(tokenizer, plain.response(i)[:k]) for i, k in enumerate(cuts)]
    assert any(not t.endswith(STOP) for t in tails) and any(t.endswith(STOP) for t in tails), tails
    for i, k in enumerate(cuts):
        assert stopped.response(i).tolist() == plain.response(i)[:k].tolist()
    assert stopped.finished.all()
    assert stopped.prompt_index.tolist() == plain.prompt_index.tolist()


def test_a_batch_whose_rows_all_stopped_ends_without_running_to_the_budget(
    generator: HFGenerator, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    plain = generator.generate(PROMPTS, GREEDY)
    longest = max(first_stop(tokenizer, plain.response(i), STOP) or 0 for i in range(len(PROMPTS)))
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        generator.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=16, stop=STOP))
    finally:
        hook.remove()
    assert len(calls) == longest < 16  # one forward pass a token, up to the last row's stop


def test_a_stop_string_that_never_occurs_changes_nothing(generator: HFGenerator) -> None:
    plain = generator.generate(PROMPTS, GREEDY)
    stopped = generator.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=16, stop=("zz",)))
    np.testing.assert_array_equal(plain.token_ids, stopped.token_ids)
    np.testing.assert_array_equal(plain.offsets, stopped.offsets)
    np.testing.assert_array_equal(plain.finished, stopped.finished)


def test_sampled_responses_hold_a_stop_string_only_at_their_end_and_then_are_finished(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    torch.manual_seed(1)
    generator = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, tokenizer=tokenizer, batch_size=12)
    stop = ("Q:", "\n\n")
    out = generator.generate(PROMPTS, SamplingParams(temperature=1.0, max_new_tokens=16, n=3, stop=stop))
    assert out.prompt_index.tolist() == [p for p in range(len(PROMPTS)) for _ in range(3)]
    stopped = 0
    for i in range(len(out.lengths)):
        response = out.response(i)
        assert not any(s in text(tokenizer, response[:-1]) for s in stop)
        assert EOS not in response[:-1].tolist()
        if any(s in text(tokenizer, response) for s in stop):
            stopped += 1
            assert out.finished[i]
        else:
            assert out.finished[i] == (response[-1] == EOS)
    assert stopped > 0  # the strings do occur in these samples


def test_stop_strings_without_a_tokenizer_are_refused(model: LlamaForCausalLM) -> None:
    generator = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD)
    with pytest.raises(ValueError, match="stop strings need the tokenizer"):
        generator.generate(PROMPTS, SamplingParams(stop=("a",)))


def test_sampling_params_refuse_an_empty_or_bare_stop_string() -> None:
    with pytest.raises(ValueError, match="non-empty strings"):
        SamplingParams(stop=("a", ""))
    with pytest.raises(ValueError, match="non-empty strings"):
        SamplingParams(stop="a")  # type: ignore[arg-type]  # a str is not a tuple of them


def test_vllm_gets_the_stop_strings_and_marks_their_responses_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM is not installed here: a stand-in module with its API's shape takes its place.
    calls: dict[str, Any] = {}

    def completion(tokens: list[int], reason: str) -> types.SimpleNamespace:
        steps = [{t: types.SimpleNamespace(logprob=-0.5)} for t in tokens]
        return types.SimpleNamespace(token_ids=tokens, logprobs=steps, finish_reason=reason)

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            calls["llm"] = kwargs

        def generate(self, prompts: list[Any], sampling_params: Any, use_tqdm: bool) -> list[Any]:
            calls["params"] = sampling_params
            return [types.SimpleNamespace(outputs=[completion([5, 6], "stop"), completion([7, 8, 9], "length")])]

    vllm = types.ModuleType("vllm")
    vllm.inputs = types.ModuleType("vllm.inputs")  # type: ignore[attr-defined]
    vllm.inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", vllm.inputs)  # type: ignore[attr-defined]
    out = VLLMGenerator("model").generate([[3, 4]], SamplingParams(n=2, stop=("\n\nQuestion:",)))
    assert calls["params"] == vllm_sampling_kwargs(SamplingParams(n=2, stop=("\n\nQuestion:",)))
    assert calls["params"]["stop"] == ["\n\nQuestion:"] and calls["params"]["include_stop_str_in_output"]
    assert out.finished.tolist() == [True, False]
    assert out.offsets.tolist() == [0, 2, 5]
    assert vllm_sampling_kwargs(SamplingParams())["stop"] == []


def test_the_config_key_defaults_to_no_strings_and_refuses_an_empty_string() -> None:
    assert TrainConfig().rollout.stop == []
    # YAML: escapes such as \n take double quotes.
    assert load_train_config(None, ['rollout.stop=["\\n\\nQuestion:"]']).rollout.stop == ["\n\nQuestion:"]
    with pytest.raises(ConfigError, match=r"rollout\.stop: .*stop strings must not be empty \(item 1 is ''\)"):
        load_train_config(None, ["rollout.stop=['a', '']"])


def test_training_samples_with_the_configured_stop_strings() -> None:
    cfg = load_train_config(None, ["rollout.stop=['Q:', 'b: b:']"])
    sampling = Trainer.sampling.fget(types.SimpleNamespace(cfg=cfg))  # type: ignore[attr-defined]
    assert sampling.stop == ("Q:", "b: b:")


def test_the_rollout_role_reads_responses_with_the_models_tokenizer(
    tmp_path: Path, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    stop = SamplingParams(temperature=0.0, max_new_tokens=16, stop=STOP)
    role = RolloutRole(config=RolloutConfig(stop=list(STOP)), model_path=str(tmp_path), eos_token_id=EOS,
                       pad_token_id=PAD, seed=0)
    expected = HFGenerator(model, eos_token_id=EOS, pad_token_id=PAD, tokenizer=tokenizer).generate(PROMPTS, stop)
    np.testing.assert_array_equal(role.generate(PROMPTS, stop).token_ids, expected.token_ids)
    # Without rollout.stop no tokenizer is needed, and none is loaded.
    assert RolloutRole(config=RolloutConfig(), model_path=str(tmp_path), eos_token_id=EOS, pad_token_id=PAD,
                       seed=0).generator.tokenizer is None  # type: ignore[attr-defined]


class RecordingRollout:
    """Answers every prompt with one token, remembering the sampling it was asked for."""

    def __init__(self) -> None:
        self.asked: list[SamplingParams] = []

    def generate(self, prompts: list[list[int]], sampling: SamplingParams) -> GenerationOutput:
        self.asked.append(sampling)
        count = len(prompts) * sampling.n
        return GenerationOutput(
            token_ids=np.full(count, 3, dtype=np.int64),
            offsets=offsets_from_lengths(np.ones(count, dtype=np.int64)),
            prompt_index=np.repeat(np.arange(len(prompts), dtype=np.int64), sampling.n),
            finished=np.ones(count, dtype=bool),
        )


class ZeroReward:
    def score(self, token_ids: np.ndarray, offsets: np.ndarray, answers: list[str]) -> RewardOutput:
        count = len(offsets) - 1
        return RewardOutput(np.zeros(count, np.float32), np.zeros(count, bool), n_errors=0, n_timeouts=0)


def test_eval_samples_greedy_and_k_answers_with_the_stop_strings() -> None:
    rollout = RecordingRollout()
    evaluate(InlineHandle("rollout", rollout), InlineHandle("reward", ZeroReward()), [[3], [4]], ["1", "2"],
             max_new_tokens=4, k=2, stop=["Q:"])
    assert [(s.greedy, s.n, s.stop) for s in rollout.asked] == [(True, 1, ("Q:",)), (False, 2, ("Q:",))]
