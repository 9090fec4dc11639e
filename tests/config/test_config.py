"""The config schema: presets load, errors name the key and its origin, overrides are YAML scalars."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from asyppo.__main__ import main
from asyppo.algos import PRESET_KEYS
from asyppo.config import ConfigError, TrainConfig, dump_config, load_train_config, parse_override
from asyppo.config.docs import config_reference

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_is_a_preset_for_the_default_the_paper_and_every_baseline() -> None:
    names = {p.stem for p in PRESETS}
    assert "default" in names
    assert {"paper_qwen3-4b_2x0.6b", "paper_qwen3-8b_2x1.7b", "paper_qwen3-14b_2x1.7b"} <= names
    baselines = {"ppo_classic", "ppo_naive_asymmetric", "naive_ensemble", "grpo", "drgrpo", "dapo",
                 "aspo", "asympo", "spo"}
    assert {f"baseline_{b}" for b in baselines} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_validates_against_the_schema(path: Path) -> None:
    assert isinstance(load_train_config(str(path)), TrainConfig)


def test_the_default_preset_is_the_schema_default() -> None:
    assert load_train_config(str(ROOT / "configs" / "default.yaml")) == TrainConfig()


def test_default_yaml_is_exactly_what_config_show_prints(capsys: pytest.CaptureFixture[str]) -> None:
    # Loading to the same config is not enough: a key missing from the file loads to its default
    # too, so the file silently stopped listing keys the schema gained.
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    lines = (ROOT / "configs" / "default.yaml").read_text().splitlines(keepends=True)
    header = [line for line in lines if not line.strip() or line.startswith("#")]
    body = "".join(lines[len(header) :]) if lines[: len(header)] == header else "".join(lines)
    assert header, "configs/default.yaml keeps a comment header saying what it is"
    assert body == shown, "regenerate the part below the header: python -m asyppo config show"


def test_classic_ppo_preset_uses_one_critic_as_large_as_the_actor() -> None:
    cfg = load_train_config(str(ROOT / "configs" / "baseline_ppo_classic.yaml"))
    assert cfg.critic.count == 1 and cfg.critic.path == cfg.actor.path and cfg.algo.name == "ppo"


def test_overrides_are_parsed_as_yaml_scalars() -> None:
    assert parse_override("algo.clip_high=0.28") == (["algo", "clip_high"], 0.28)
    assert parse_override("data.eval=null") == (["data", "eval"], None)
    assert parse_override("logging.tensorboard=false") == (["logging", "tensorboard"], False)
    assert parse_override("data.train=a=b.jsonl") == (["data", "train"], "a=b.jsonl")


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("critic:\n  count: 3\nrollout:\n  n: 4\n")
    cfg = load_train_config(str(path), ["critic.count=2", "algo.name=grpo"])
    assert (cfg.critic.count, cfg.rollout.n, cfg.algo.name, cfg.algo.adv_estimator) == (2, 4, "grpo", "grpo")


def test_unknown_key_in_a_file_names_file_line_key_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  steps: 3\n  ppo_epoch: 2\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(str(path))
    message = str(info.value)
    assert f"{path}:3" in message
    assert "unknown key trainer.ppo_epoch" in message
    assert "did you mean trainer.ppo_epochs?" in message


def test_unknown_override_key_names_the_override_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"override 'critic.cout=2'.*did you mean critic.count\?"):
        load_train_config(None, ["critic.cout=2"])


def test_unknown_section_is_suggested_from_every_valid_key() -> None:
    with pytest.raises(ConfigError, match="did you mean"):
        load_train_config(None, ["rolout.n=2"])


def test_wrong_type_names_the_dotted_key_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"rollout\.n: .*integer.*'many'"):
        load_train_config(None, ["rollout.n=many"])


def test_malformed_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_train_config(None, ["rollout.n"])


def test_masks_without_two_critics_are_refused_before_anything_loads() -> None:
    with pytest.raises(ConfigError, match="critic.count >= 2"):
        load_train_config(None, ["critic.count=1"])


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(str(tmp_path / "nope.yaml"))


def test_dumped_config_loads_back_to_the_same_config(tmp_path: Path) -> None:
    cfg = load_train_config(None, ["algo.name=dapo", "critic.count=3", "rollout.top_k=50"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_train_config(str(path)) == cfg
    assert yaml.safe_load(path.read_text())["algo"]["clip_high"] == 0.28


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_config_show_of_every_preset_loads_back_to_the_same_config(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = tmp_path / "shown.yaml"
    shown.write_text(capsys.readouterr().out)
    assert load_train_config(str(shown)) == load_train_config(str(path))


def test_config_show_takes_overrides_before_and_after_the_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    grpo = str(ROOT / "configs" / "baseline_grpo.yaml")
    assert main(["config", "show", "--config", grpo, "algo.clip_high=0.3"]) == 0
    after = capsys.readouterr().out
    assert main(["config", "show", "algo.clip_high=0.3", "--config", grpo]) == 0
    assert capsys.readouterr().out == after and "  clip_high: 0.3\n" in after


def test_config_show_names_the_preset_behind_each_value_it_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "algo.name=dapo", "algo.clip_high=0.3"]) == 0
    algo = capsys.readouterr().out.split("\nalgo:\n")[1].split("\nreward:")[0].splitlines()
    noted = {line.split(":")[0].strip() for line in algo if line.endswith("  # from preset dapo")}
    # Every preset key but the one given explicitly; nothing else carries a comment.
    assert noted == set(PRESET_KEYS) - {"clip_high"}
    assert "  clip_high: 0.3" in algo and sum("#" in line for line in algo) == len(noted)


def test_config_reference_doc_matches_the_schema() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == config_reference()


def test_overriding_one_key_of_a_section_keeps_the_sections_other_defaults() -> None:
    default = TrainConfig()
    cfg = load_train_config(None, ["actor.optim.schedule=cosine", "critic.optim.grad_clip=0.5"])
    assert cfg.actor.optim.lr == default.actor.optim.lr
    assert cfg.critic.optim.weight_decay == default.critic.optim.weight_decay
    assert (cfg.actor.optim.schedule, cfg.critic.optim.grad_clip) == ("cosine", 0.5)


def test_every_nested_default_equals_a_fresh_section() -> None:
    # Guards the invariant above: a section's embedded default must be its class default.
    def walk(model: object) -> None:
        for name in type(model).model_fields:  # type: ignore[attr-defined]
            value = getattr(model, name)
            if hasattr(type(value), "model_fields"):
                assert value == type(value)(), f"{type(model).__name__}.{name}"
                walk(value)

    walk(TrainConfig())


def test_the_schema_defaults_are_the_measured_toy_rl_settings() -> None:
    from asyppo.toy import TOY_RL_SETTINGS

    default = TrainConfig()
    for dotted, value in TOY_RL_SETTINGS.items():
        node: object = default
        for part in dotted.split("."):
            node = getattr(node, part)
        assert node == value, dotted


def test_placement_gives_critics_a_lower_cpu_priority_unless_set() -> None:
    runtime = load_train_config(None, ["runtime.placement={critic1: {nice: 0, cpu_threads: 2}}"]).runtime
    assert (runtime.nice_of("critic0"), runtime.nice_of("critic1"), runtime.nice_of("actor")) == (5, 0, 0)
    assert (runtime.threads_of("critic1"), runtime.threads_of("critic0")) == (2, 1)
    with pytest.raises(ConfigError, match="did you mean critic"):
        load_train_config(None, ["runtime.placement={critics: {nice: 1}}"])
