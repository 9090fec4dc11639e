"""A no-grad pass over a batch micro-batch by micro-batch: within the token budget, results in
packed order."""

from __future__ import annotations

import numpy as np
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.trainer.model_input import ModelInput
from asyppo.trainer.roles.microbatch import packed_outputs


def random_batch(n: int, seed: int) -> TrajectoryBuffer:
    rng = np.random.default_rng(seed)
    buf = TrajectoryBuffer()
    for i in range(n):
        buf.append(rng.integers(1, 9, rng.integers(1, 6)), rng.integers(1, 50, rng.integers(1, 12)), group_id=i // 4)
    return buf


def test_packed_outputs_put_every_micro_batch_result_back_in_packed_order() -> None:
    batch = random_batch(30, seed=0)
    out = packed_outputs(batch, lambda x: x.labels.float(), max_tokens=40, pad_token_id=0, device="cpu")
    np.testing.assert_array_equal(out, batch.response_ids.astype(np.float32))


def test_packed_outputs_never_build_an_input_beyond_the_token_budget_with_more_than_one_sequence() -> None:
    batch = random_batch(30, seed=1)
    seen: list[ModelInput] = []

    def record(x: ModelInput) -> torch.Tensor:
        seen.append(x)
        return torch.zeros(x.labels.shape)

    packed_outputs(batch, record, max_tokens=24, pad_token_id=0, device="cpu")
    assert len(seen) > 1
    for x in seen:
        # The padded [B, P + R] input itself, padding included, not only its real tokens.
        assert x.input_ids.numel() <= 24 or x.input_ids.shape[0] == 1
    assert sum(x.input_ids.shape[0] for x in seen) == len(batch)
