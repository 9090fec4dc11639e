"""The typed config schema (pydantic), YAML loading with dotted overrides, and its reference doc."""

from __future__ import annotations

from asyppo.config.loader import ConfigError, dump_config, load_config, parse_override, valid_keys
from asyppo.config.schema import (
    PAPER_SYSTEM_PROMPT,
    ActorConfig,
    CriticConfig,
    DataConfig,
    LoggingConfig,
    OptimConfig,
    RolloutConfig,
    RuntimeConfig,
    TrainConfig,
    TrainerConfig,
)


def load_train_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The run config: schema defaults < YAML file at ``path`` < dotted ``overrides``."""
    return load_config(TrainConfig, path, overrides)


__all__ = [
    "PAPER_SYSTEM_PROMPT",
    "ActorConfig",
    "ConfigError",
    "CriticConfig",
    "DataConfig",
    "LoggingConfig",
    "OptimConfig",
    "RolloutConfig",
    "RuntimeConfig",
    "TrainConfig",
    "TrainerConfig",
    "dump_config",
    "load_config",
    "load_train_config",
    "parse_override",
    "valid_keys",
]
