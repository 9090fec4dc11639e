"""The embedded default learns: held-out greedy accuracy of the warm-started toy actor rises.

Uses the real builtin assets (built once into the user cache, then reused), the default config
with a shortened schedule, a fixed seed and a generous threshold.
"""

from __future__ import annotations

from pathlib import Path

from asyppo.config import load_train_config
from asyppo.trainer import Trainer


def test_the_default_task_accuracy_rises_within_25_steps(tmp_path: Path) -> None:
    cfg = load_train_config(None, [
        "trainer.steps=25", "trainer.eval_every=0", "data.eval_limit=128", f"trainer.output_dir={tmp_path}",
        "trainer.export_hf=false", "logging.tensorboard=false", "logging.progress_bar=false",
        "logging.console_every=0",
    ])
    trainer = Trainer(cfg)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert result.start_accuracy is not None and result.end_accuracy is not None
    assert result.end_accuracy >= result.start_accuracy + 0.08, (result.start_accuracy, result.end_accuracy)
