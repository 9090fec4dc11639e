"""`RewardConfig`: the ``reward:`` section of the trainer config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardConfig(BaseModel):
    """How a response is scored. The score of one response is

        score = correct_weight * [verifier says correct]
              + format_reward  * [response has a closed \\boxed{...}]
              + user_weight    * user_fn(response, answer)

    and a response whose scoring raises or exceeds ``timeout_s`` scores 0 (counted as an error or
    a timeout in the metrics). With ``truncated_score`` set, a response cut at ``max_new_tokens``
    without EOS scores ``truncated_score`` instead (applied by the trainer, which knows which
    responses stopped). ``correct`` (the accuracy metric) is the verifier's verdict; with
    ``verifier: none`` it is ``score > 0``.
    """

    model_config = ConfigDict(extra="forbid")

    verifier: Literal["math", "exact", "none"] = Field(
        "math",
        description="Correctness check of the last \\boxed{} answer: 'math' = math-verify symbolic "
        "equivalence (exact string match when unparsable), 'exact' = normalised string match only, "
        "'none' = no correctness reward.",
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
