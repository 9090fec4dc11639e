"""Checkpoints: round trip of weights / optimizer / scheduler / RNG / state, atomicity, pruning, HF export."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import asyppo.checkpoint as ckpt
import numpy as np
import pytest
import torch
from asyppo.checkpoint import (
    checkpoint_step,
    export_hf,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tokenizers import Tokenizer, models
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)


def _tiny_lm(seed: int = 0) -> Qwen3ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=16,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        tie_word_embeddings=True,
    )
    return Qwen3ForCausalLM(config)


def _trained(seed: int = 0) -> tuple[Qwen3ForCausalLM, torch.optim.Optimizer, Any]:
    """A model, AdamW and a warmup schedule after two real updates (non-trivial optimizer state)."""
    model = _tiny_lm(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    for _ in range(2):
        _update(model, opt, sched)
    return model, opt, sched


def _update(model: Qwen3ForCausalLM, opt: torch.optim.Optimizer, sched: Any) -> None:
    ids = torch.randint(0, 16, (2, 6))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def _save(root: Path, step: int, **kwargs: Any) -> Path:
    """A small checkpoint of every kind (module, optimizer, scheduler), cheap to write."""
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    return save_checkpoint(
        root,
        step,
        modules={"actor": model},
        optimizers={"actor": opt},
        schedulers={"actor": sched},
        **kwargs,
    )


def test_round_trip_restores_weights_bit_exactly(tmp_path: Path) -> None:
    model = _trained(seed=0)[0]
    path = save_checkpoint(tmp_path, 2, modules={"actor": model})
    fresh = _tiny_lm(seed=1)
    load_checkpoint(path, modules={"actor": fresh})
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_round_trip_restores_optimizer_and_scheduler_state(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    path = save_checkpoint(
        tmp_path, 2, modules={"actor": model}, optimizers={"opt": opt}, schedulers={"lr": sched}
    )
    fresh = _tiny_lm(seed=1)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    fresh_sched = torch.optim.lr_scheduler.LinearLR(fresh_opt, start_factor=0.1, total_iters=5)
    load_checkpoint(
        path,
        modules={"actor": fresh},
        optimizers={"opt": fresh_opt},
        schedulers={"lr": fresh_sched},
    )
    saved, restored = opt.state_dict(), fresh_opt.state_dict()
    assert restored["param_groups"][0]["betas"] == saved["param_groups"][0]["betas"]
    assert restored["param_groups"][0]["lr"] == saved["param_groups"][0]["lr"]
    for index, slots in saved["state"].items():
        for key, value in slots.items():
            assert torch.equal(restored["state"][index][key], value), (index, key)
    assert fresh_sched.state_dict() == sched.state_dict()


def test_resumed_training_continues_bit_for_bit(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    path = save_checkpoint(
        tmp_path, 2, modules={"m": model}, optimizers={"o": opt}, schedulers={"s": sched}
    )
    _update(
        model, opt, sched
    )  # the uninterrupted run's step 3 (draws its batch from the torch RNG)

    resumed = _tiny_lm(seed=1)
    resumed_opt = torch.optim.AdamW(resumed.parameters(), lr=1e-3, betas=(0.9, 0.95))
    resumed_sched = torch.optim.lr_scheduler.LinearLR(resumed_opt, start_factor=0.1, total_iters=5)
    load_checkpoint(
        path, modules={"m": resumed}, optimizers={"o": resumed_opt}, schedulers={"s": resumed_sched}
    )
    _update(resumed, resumed_opt, resumed_sched)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_rng_states_are_restored_so_the_next_draws_match(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_checkpoint(tmp_path, 0, modules={})
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    load_checkpoint(path)
    got = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_rng_is_left_alone_when_restore_rng_is_false(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 0, modules={})
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    load_checkpoint(path, restore_rng=False)
    assert torch.equal(torch.rand(2), expected)


def test_caller_state_round_trips_with_its_types(tmp_path: Path) -> None:
    state = {
        "sampler": {"epoch": 3, "position": 17, "order": [4, 1, 2]},
        "pair": (1, "a"),
        "by_index": {0: 1.5, 7: float("inf")},
        "array": np.arange(4, dtype=np.int64),
        "tensor": torch.tensor([1.0, 2.0]),
        "nothing": None,
    }
    loaded = load_checkpoint(save_checkpoint(tmp_path, 1, modules={}, state=state))
    assert loaded["sampler"] == state["sampler"]
    assert loaded["pair"] == (1, "a")
    assert loaded["by_index"] == {0: 1.5, 7: float("inf")}
    assert loaded["array"].dtype == np.int64 and loaded["array"].tolist() == [0, 1, 2, 3]
    assert torch.equal(loaded["tensor"], state["tensor"])
    assert loaded["nothing"] is None


def test_checkpoint_holds_no_pickle(tmp_path: Path) -> None:
    path = _save(tmp_path, 1, state={"x": 1})
    suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}


def test_state_that_would_need_pickle_is_refused_naming_where(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\.sampler\.rng: cannot store a object"):
        save_checkpoint(tmp_path, 1, modules={}, state={"sampler": {"rng": object()}})
    assert latest_checkpoint(tmp_path) is None


def test_checkpoint_directory_is_named_after_the_step(tmp_path: Path) -> None:
    path = _save(tmp_path, 12)
    assert path.name == "step_000012"
    assert checkpoint_step(path) == 12


def test_latest_checkpoint_is_the_highest_step(tmp_path: Path) -> None:
    for step in (3, 10, 7):
        _save(tmp_path, step, keep_last=None)
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000010"


def test_latest_checkpoint_of_an_empty_or_missing_root_is_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None


def test_crash_mid_save_leaves_the_last_good_checkpoint_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _save(tmp_path, 1)
    real_write_tree = ckpt._write_tree

    def crash_on_scheduler(directory: Path, name: str, obj: Any) -> None:
        real_write_tree(directory, name, obj)
        if directory.name == "schedulers":
            raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_tree", crash_on_scheduler)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2)
    assert latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000001"]


def test_leftovers_of_a_killed_save_are_ignored_then_cleaned(tmp_path: Path) -> None:
    good = _save(tmp_path, 1)
    killed = tmp_path / ".tmp-step_000002-deadbeef"
    (killed / "modules").mkdir(parents=True)
    (killed / "modules" / "actor.safetensors").write_bytes(b"partial")
    half = tmp_path / "step_000003"  # e.g. copied by hand without its meta.json
    half.mkdir()
    assert latest_checkpoint(tmp_path) == good
    _save(tmp_path, 4)
    assert not killed.exists()


def test_saving_an_existing_step_replaces_it(tmp_path: Path) -> None:
    _save(tmp_path, 5, state={"v": 1})
    path = _save(tmp_path, 5, state={"v": 2})
    assert load_checkpoint(path)["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["step_000005"]


def test_keep_last_prunes_the_oldest(tmp_path: Path) -> None:
    for step in range(1, 6):
        _save(tmp_path, step, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000004", "step_000005"]


def test_loading_an_absent_name_lists_what_the_checkpoint_has(tmp_path: Path) -> None:
    path = _save(tmp_path, 1)
    with pytest.raises(ValueError, match=r"no modules named \['critic_0'\]; it has \['actor'\]"):
        load_checkpoint(path, modules={"critic_0": torch.nn.Linear(4, 2)})


def test_loading_weights_of_another_shape_raises_naming_the_module(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, modules={"head": torch.nn.Linear(4, 1)})
    with pytest.raises(ValueError, match="weights of module 'head' do not fit"):
        load_checkpoint(path, modules={"head": torch.nn.Linear(3, 1)})


def test_bad_module_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modules: name '../x' is not usable"):
        save_checkpoint(tmp_path, 1, modules={"../x": torch.nn.Linear(2, 2)})


def test_meta_json_records_the_step_and_names(tmp_path: Path) -> None:
    saved = _save(tmp_path, 4)
    meta = json.loads((saved / "meta.json").read_text())
    parts = json.loads((saved / "parts.json").read_text())
    assert meta["step"] == 4 and parts["modules"] == ["actor"] and parts["optimizers"] == ["actor"]


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {f"w{i}": i for i in range(16)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="w0")), eos_token="w1"
    )


def test_export_hf_loads_with_auto_model_for_causal_lm(tmp_path: Path) -> None:
    model = _tiny_lm()
    out = export_hf(model, _tokenizer(), tmp_path / "hf")
    loaded = AutoModelForCausalLM.from_pretrained(str(out))
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert AutoTokenizer.from_pretrained(str(out)).eos_token == "w1"
    assert any(p.suffix == ".safetensors" for p in out.iterdir())


def test_export_hf_replaces_a_previous_export(tmp_path: Path) -> None:
    export_hf(_tiny_lm(seed=0), None, tmp_path / "hf")
    second = _tiny_lm(seed=1)
    export_hf(second, None, tmp_path / "hf")
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))
    assert torch.equal(loaded.model.embed_tokens.weight, second.model.embed_tokens.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]


def test_export_hf_rejects_a_plain_module(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expected a transformers PreTrainedModel, got Linear"):
        export_hf(torch.nn.Linear(2, 2), None, tmp_path / "hf")
