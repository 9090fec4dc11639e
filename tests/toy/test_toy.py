"""Specification of the embedded toy assets: tokenizer, models, task splits and builtin cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.data import load_prompts
from asyppo.rewards import math_correct
from asyppo.toy import (
    ACTOR_SIZE,
    CRITIC_SIZE,
    TOY_RL_SETTINGS,
    ArithmeticTask,
    ToySettings,
    WarmStartSettings,
    build_toy_model,
    build_toy_tokenizer,
    resolve_builtin,
    task_splits,
    warm_start,
)
from asyppo.toy import builtin as builtin_module
from asyppo.toy.model import count_parameters
from asyppo.toy.task import parse_prompt, response_text
from transformers import AutoModelForCausalLM, AutoTokenizer

TINY = ToySettings(
    task=ArithmeticTask(low=0, high=9, n_eval=20),
    warm_start=WarmStartSettings(
        max_steps=4, batch_size=8, eval_every=2, n_probe=8, target_accuracy=1.0
    ),
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toy-cache")


def test_tokenizer_round_trips_task_text() -> None:
    tokenizer = build_toy_tokenizer()
    for text in ("47+38=", "\\boxed{85}", "Please reason step by step.\n\n12+3="):
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_tokenizer_keeps_boxed_as_one_token_and_adds_no_bos() -> None:
    tokenizer = build_toy_tokenizer()
    ids = tokenizer("\\boxed{85}")["input_ids"]
    assert len(ids) == 5 and ids == tokenizer("\\boxed{85}", add_special_tokens=False)["input_ids"]


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path: Path) -> None:
    build_toy_tokenizer().save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    original = build_toy_tokenizer()
    assert loaded("12+34=\\boxed{46}")["input_ids"] == original("12+34=\\boxed{46}")["input_ids"]
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)


def test_actor_and_critic_sizes() -> None:
    tokenizer = build_toy_tokenizer()
    actor = count_parameters(build_toy_model(tokenizer, ACTOR_SIZE, seed=0))
    critic = count_parameters(build_toy_model(tokenizer, CRITIC_SIZE, seed=0))
    assert 300_000 <= actor <= 1_000_000
    assert 0.15 <= critic / actor <= 0.35


def test_model_forward_covers_the_vocabulary() -> None:
    tokenizer = build_toy_tokenizer()
    model = build_toy_model(tokenizer, CRITIC_SIZE, seed=0)
    logits = model(**tokenizer(["1+2="], return_tensors="pt")).logits
    assert logits.shape == (1, 4, len(tokenizer))


def test_task_splits_are_disjoint_and_cover_every_pair() -> None:
    task = ArithmeticTask(low=10, high=99, n_eval=256)
    train, held_out = task_splits(task)
    train_prompts, eval_prompts = {r["prompt"] for r in train}, {r["prompt"] for r in held_out}
    assert not train_prompts & eval_prompts
    assert len(train_prompts) + len(eval_prompts) == 90 * 90 and len(eval_prompts) == 256


def test_task_answers_are_the_sums_and_the_ideal_response_verifies() -> None:
    train, _ = task_splits(ArithmeticTask(low=0, high=9, n_eval=10))
    for row in train:
        a, b = parse_prompt(row["prompt"])
        assert row["answer"] == str(a + b)
        assert math_correct(response_text(a, b), row["answer"])


def test_task_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="n_eval must be in"):
        ArithmeticTask(low=0, high=1, n_eval=4)


def test_warm_start_stops_at_the_first_probe_that_reaches_the_target() -> None:
    tokenizer = build_toy_tokenizer()
    model = build_toy_model(tokenizer, CRITIC_SIZE, seed=0)
    train, _ = task_splits(ArithmeticTask(low=0, high=9, n_eval=10))
    settings = WarmStartSettings(
        max_steps=50, batch_size=4, eval_every=3, n_probe=4, target_accuracy=0.0
    )
    report = warm_start(
        model, tokenizer, [r["prompt"] for r in train], [r["answer"] for r in train], settings
    )
    assert report.steps == 3


def test_builtin_datasets_load_and_are_disjoint(cache: Path) -> None:
    train = load_prompts(resolve_builtin("builtin:toy-train", cache, settings=TINY))
    held_out = load_prompts(resolve_builtin("builtin:toy-eval", cache, settings=TINY))
    assert len(held_out) == 20 and len(train) == 80
    assert not {r.prompt for r in train} & {r.prompt for r in held_out}


def test_builtin_actor_is_an_hf_model_directory(cache: Path) -> None:
    path = resolve_builtin("builtin:toy-actor", cache, settings=TINY)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer)
    assert json.loads((path / "warm_start.json").read_text())["steps"] <= 4


def test_builtin_critic_shares_the_actor_tokenizer(cache: Path) -> None:
    critic = resolve_builtin("builtin:toy-critic", cache, settings=TINY)
    actor = resolve_builtin("builtin:toy-actor", cache, settings=TINY)
    assert (
        AutoTokenizer.from_pretrained(critic).get_vocab()
        == AutoTokenizer.from_pretrained(actor).get_vocab()
    )
    assert (
        AutoModelForCausalLM.from_pretrained(critic).config.hidden_size == CRITIC_SIZE.hidden_size
    )


def test_builtin_assets_are_reused_from_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve_builtin("builtin:toy-critic", cache, settings=TINY)

    def must_not_build(*args: object) -> None:
        raise AssertionError("rebuilt a cached asset")

    monkeypatch.setattr(builtin_module, "_build_critic", must_not_build)
    assert resolve_builtin("builtin:toy-critic", cache, settings=TINY) == first


def test_failed_build_leaves_no_asset_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(settings: ToySettings, out: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin_module, "_build_critic", crash)
    with pytest.raises(KeyboardInterrupt):
        resolve_builtin("builtin:toy-critic", tmp_path, settings=TINY)
    assert list(tmp_path.rglob("config.json")) == []


def test_cache_key_follows_the_settings() -> None:
    assert TINY.key() == ToySettings(task=TINY.task, warm_start=TINY.warm_start).key()
    assert TINY.key() != ToySettings().key()


def test_unknown_builtin_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: builtin:toy-actor, builtin:toy-critic"):
        resolve_builtin("builtin:toy-bogus", tmp_path)


def test_rl_settings_are_valid_trainer_overrides() -> None:
    import yaml
    from asyppo.config import load_train_config

    overrides = [
        f"{key}={yaml.safe_dump(value).splitlines()[0]}" for key, value in TOY_RL_SETTINGS.items()
    ]
    cfg = load_train_config(None, overrides)
    assert cfg.actor.optim.lr == TOY_RL_SETTINGS["actor.optim.lr"]
    assert cfg.rollout.prompts_per_step == TOY_RL_SETTINGS["rollout.prompts_per_step"]
    assert cfg.data.system_prompt is None
