"""`RewardConfig`: the ``reward:`` section of the trainer config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardConfig(BaseModel):
    """How a response is scored. The score of one response is

        score = correct_weight * [verifier says correct]   (its answer: the last \\boxed{}, or answer_fallback)
              + format_reward  * [response has a closed \\boxed{...}]
              + user_weight    * user_fn(response, answer)

    and a response whose scoring raises or exceeds ``timeout_s`` scores 0 (counted as an error or
    a timeout in the metrics). ``correct`` (the accuracy metric) is the verifier's verdict; with
    ``verifier: none`` it is ``score > 0``.

    The trainer then shapes the score it trains on, knowing which responses stopped and how long
    they are (`asyppo.trainer.experience.shaped_scores`), in this order:

    1. with ``truncated_score`` set, a response cut at ``max_new_tokens`` without EOS scores
       ``truncated_score`` instead (the hard form of DAPO's overlong handling);
    2. with ``overlong_buffer`` set, every response gets DAPO's soft overlong punishment added
       (`asyppo.rewards.shaping.overlong_penalty`, arXiv 2503.14476 §3.4 eq. 13):
       ``overlong_penalty_factor * clip(((L_max - overlong_buffer) - |y|) / overlong_buffer, -1, 0)``
       with ``L_max = rollout.max_new_tokens``. Both may be on: a truncated response, which is
       ``L_max`` long, then scores ``truncated_score - overlong_penalty_factor``.
    """

    model_config = ConfigDict(extra="forbid")

    verifier: Literal["math", "exact", "none"] = Field(
        "math",
        description="Correctness check of the last \\boxed{} answer: 'math' = math-verify symbolic "
        "equivalence (exact string match when unparsable), 'exact' = normalised string match only, "
        "'none' = no correctness reward.",
    )
    answer_fallback: Literal["last_number"] | None = Field(
        None,
        description="Where the verifier looks when a response has no closed \\boxed{}: null: nowhere, "
        "the answer is wrong (the AsyPPO paper's verifier); last_number: the response's last number "
        "(e.g. 'so the total is 1,234.'), for models that answer in plain text.",
    )
    correct_weight: float = Field(1.0, description="Reward of a correct answer.")
    format_reward: float = Field(
        0.0, description="Bonus for a response that gives a closed \\boxed{} answer; 0 disables it."
    )
    user_fn: str | None = Field(
        None,
        description="Extra reward 'package.module:function' or 'path/to/file.py:function', "
        "called as fn(response: str, answer: str) -> float.",
    )
    user_weight: float = Field(1.0, description="Weight of user_fn's value.")
    truncated_score: float | None = Field(
        0.0,
        description="Score of a sampled response that hits rollout.max_new_tokens without EOS, "
        "whatever its answer (null: score it like any other). Without it nothing rewards stopping: "
        "a box written early is paid in full however the response goes on, and the entropy bonus "
        "then spreads the tokens after it (the hard form of DAPO's overlong handling, arXiv "
        "2503.14476 sec. 3.4). Training scores only: "
        "the accuracy metrics keep the verifier's verdict.",
    )
    overlong_buffer: int | None = Field(
        None,
        ge=1,
        description="DAPO's soft overlong punishment (arXiv 2503.14476 sec. 3.4, eq. 13; verl's "
        "reward_model.overlong_buffer.len): L_cache, the last tokens before rollout.max_new_tokens "
        "(L_max) over which a penalty falls linearly from 0 at L_max - L_cache tokens to "
        "-overlong_penalty_factor at L_max. Added to the score after truncated_score. At most "
        "rollout.max_new_tokens; null: off. Training scores only: the accuracy metrics keep the "
        "verifier's verdict.",
    )
    overlong_penalty_factor: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="Scale of the soft overlong punishment: its value at L_max is "
        "-overlong_penalty_factor (verl's reward_model.overlong_buffer.penalty_factor; DAPO: 1).",
    )
    timeout_s: float = Field(
        5.0, gt=0, description="Wall-time limit for scoring one response (seconds)."
    )

    @model_validator(mode="after")
    def _scores_something(self) -> RewardConfig:
        if self.verifier == "none" and self.user_fn is None and self.format_reward == 0:
            raise ValueError(
                "reward: verifier is 'none' and neither user_fn nor format_reward is set"
            )
        return self
