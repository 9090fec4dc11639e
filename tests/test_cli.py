"""The command line: train / eval / plot / config, with clear errors on bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from asyppo.__main__ import main
from asyppo.config import TrainConfig, load_train_config

sys.path.insert(0, str(Path(__file__).parent / "trainer"))
from trainer_assets import Assets, build_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(tmp_path_factory.mktemp("cli_assets"))


def test_config_show_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "algo.name=grpo", "rollout.n=4"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["algo"]["name"] == "grpo" and shown["rollout"]["n"] == 4
    assert TrainConfig.model_validate(shown) == load_train_config(None, ["algo.name=grpo", "rollout.n=4"])


def test_module_entry_point_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "asyppo", "config", "show"], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert yaml.safe_load(done.stdout) == TrainConfig().model_dump(mode="json")


def test_a_bad_override_exits_2_with_the_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "trainer.step=3"]) == 2
    assert "did you mean trainer.steps?" in capsys.readouterr().err


def test_train_resume_eval_and_plot(assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", *assets.overrides(run, "trainer.steps=1")]) == 0
    out = capsys.readouterr().out
    assert "eval accuracy at start" in out and "accuracy gain" in out
    assert main(["train", "--resume", *assets.overrides(run, "trainer.steps=2")]) == 0
    assert (run / "checkpoints" / "step_000002").is_dir()
    assert main(["eval", "--model", str(run / "hf_export"), "--data", str(assets.eval), "--k", "2",
                 "reward.verifier=math", "reward.user_fn=null"]) == 0
    out = capsys.readouterr().out
    assert "avg@2" in out and "pass@2" in out and assets.eval.name in out
    assert main(["plot", str(run)]) == 0
    assert list(run.rglob("*.png"))


def test_bad_input_found_while_loading_is_one_clear_line(
    assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", *assets.overrides(tmp_path / "fresh")]) == 1
    err = capsys.readouterr().err
    assert "no config.yaml there (not a run directory" in err and "Traceback" not in err
