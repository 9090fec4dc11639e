"""The chain task (three-operand addition written out in two steps): its generator, the
verifier's scores on its responses, the toy tokenizer's coverage of its alphabet, and its
builtin assets (cached, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.data import load_prompts
from asyppo.rewards import math_correct
from asyppo.toy import build_toy_tokenizer, resolve_builtin
from asyppo.toy.chain import (
    ChainTask,
    chain_splits,
    ideal_response,
    parse_prompt,
    prompt_text,
    response_text,
)
from asyppo.toy.chain_builtin import CHAIN_NAMES, ChainSettings, resolve_chain
from asyppo.toy.model import ToyModelSize
from asyppo.toy.warmstart import WarmStartSettings, _encode_examples
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_prompts_and_ideal_responses_are_two_steps_ending_in_the_boxed_sum() -> None:
    assert prompt_text(17, 28, 6) == "17+28+6="
    assert response_text(17, 28, 6) == "45+6=\\boxed{51}"
    assert parse_prompt("17+28+6=") == (17, 28, 6)
    assert ideal_response("1+2+3=") == "3+3=\\boxed{6}"
    for bad in ("17+28=", "a+b+c=", "1+2+3", " 1+2+3="):
        with pytest.raises(ValueError, match="a\\+b\\+c="):
            parse_prompt(bad)


def test_splits_are_disjoint_deterministic_and_answer_the_final_sum() -> None:
    task = ChainTask(low=1, high=9, n_train=300, n_eval=40, seed=3)
    train, held_out = chain_splits(task)
    assert (len(train), len(held_out)) == (300, 40)
    assert chain_splits(task) == (train, held_out)
    assert chain_splits(ChainTask(low=1, high=9, n_train=300, n_eval=40, seed=4)) != (train, held_out)
    prompts = [r["prompt"] for r in train + held_out]
    assert len(set(prompts)) == len(prompts)  # no prompt twice, none shared by the splits
    for row in train + held_out:
        a, b, c = parse_prompt(row["prompt"])
        assert all(1 <= x <= 9 for x in (a, b, c))
        assert row["answer"] == str(a + b + c)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"low": 5, "high": 4}, "low <= high"),
    ({"low": 1, "high": 2, "n_train": 7, "n_eval": 2}, "n_train \\+ n_eval <= 8"),
    ({"n_eval": 0}, "n_eval >= 1"),
])
def test_bad_settings_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChainTask(**kwargs)


def test_the_toy_tokenizer_covers_the_alphabet_without_unknown_tokens() -> None:
    tokenizer = build_toy_tokenizer()
    train, held_out = chain_splits(ChainTask())
    for row in train[:200] + held_out:
        for text in (row["prompt"], ideal_response(row["prompt"])):
            ids = tokenizer(text)["input_ids"]
            assert tokenizer.unk_token_id not in ids
            assert tokenizer.decode(ids) == text
    # the longest ideal response of the default task fits the 16-token budget with its EOS
    responses = [ideal_response(r["prompt"]) for r in train + held_out]
    assert max(map(len, tokenizer(responses)["input_ids"])) == 11


@pytest.mark.parametrize(("response", "score"), [
    ("45+6=\\boxed{51}", True),  # the ideal two-step response
    ("45+6=\\boxed{52}", False),  # wrong final sum
    ("44+6=\\boxed{50}", False),  # a wrong intermediate carried through
    ("44+6=\\boxed{51}", True),  # scored on the final answer only
    ("\\boxed{51}", True),  # skipping the steps is allowed, not rewarded extra
    ("45+6=51", False),  # malformed: no box
    ("45+6=\\boxed{51", False),  # malformed: box never closed (cut by the token budget)
    ("45+6=\\boxed{}", False),  # malformed: empty box
    ("", False),
    ("\\boxed{45}+6=\\boxed{51}", True),  # the last box is the answer
    ("\\boxed{51}+6=\\boxed{57}", False),
])
def test_the_math_verifier_scores_chain_responses_on_the_final_answer(response: str, score: bool) -> None:
    assert math_correct(response, "51") is score


def test_the_warm_start_imitates_the_two_step_response() -> None:
    tokenizer = build_toy_tokenizer()
    ((prompt_ids, response_ids),) = _encode_examples(tokenizer, ["17+28+6="], ideal_response)
    assert tokenizer.decode(prompt_ids) == "17+28+6="
    assert response_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(response_ids[:-1]) == "45+6=\\boxed{51}"
    # the default stays the sums task's one-step response
    ((_, sums_ids),) = _encode_examples(tokenizer, ["47+38="])
    assert tokenizer.decode(sums_ids[:-1]) == "\\boxed{85}"


TINY = ChainSettings(
    task=ChainTask(low=1, high=6, n_train=100, n_eval=16),
    actor=ToyModelSize(16, 32, 1, 2, 1),
    warm_start=WarmStartSettings(max_steps=4, batch_size=8, eval_every=2, n_probe=8, target_accuracy=1.0),
)


def test_builtin_chain_assets_are_built_once_and_load(tmp_path: Path) -> None:
    train = resolve_chain("chain-train", tmp_path, settings=TINY)
    held_out = resolve_chain("chain-eval", tmp_path, settings=TINY)
    assert train.parent.name == f"chain-{TINY.key()}"
    assert len(load_prompts(str(train))) == 100 and len(load_prompts(str(held_out))) == 16
    actor = resolve_chain("chain-actor", tmp_path, settings=TINY)
    info = json.loads((actor / "warm_start.json").read_text())
    assert info["steps"] == 4
    AutoModelForCausalLM.from_pretrained(actor)
    assert AutoTokenizer.from_pretrained(actor).decode([5]) == build_toy_tokenizer().decode([5])
    stamp = (actor / "warm_start.json").stat().st_mtime_ns
    assert resolve_chain("chain-actor", tmp_path, settings=TINY) == actor
    assert (actor / "warm_start.json").stat().st_mtime_ns == stamp  # cached, not rebuilt
    with pytest.raises(ValueError, match="unknown chain asset"):
        resolve_chain("chain-critic", tmp_path)


def test_builtin_uris_name_the_chain_assets(tmp_path: Path) -> None:
    assert set(CHAIN_NAMES) == {"chain-actor", "chain-train", "chain-eval"}
    path = resolve_builtin("builtin:chain-eval", tmp_path)
    assert path.name == "eval.jsonl" and path.parent.name == f"chain-{ChainSettings().key()}"
    assert len(load_prompts(str(path))) == 256
    with pytest.raises(ValueError, match="builtin:chain-actor"):
        resolve_builtin("builtin:chain-critic", tmp_path)
