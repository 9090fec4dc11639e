"""Type stubs of the Rust extension ``asyppo._core`` (private back end of ``asyppo.engine``).

Arrays must already have the exact dtype and be C-contiguous; ``asyppo.engine`` converts.
"""


from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__version__: str

_F: TypeAlias = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_I: TypeAlias = npt.NDArray[np.int64]
_B: TypeAlias = npt.NDArray[np.bool_]

def gae(
    rewards: _F, values: _F, offsets: _I, gamma: float = 1.0, lam: float = 1.0
) -> tuple[_F, _F]: ...
def aggregate_values(values: _F, how: str = "mean") -> tuple[_F, _F]: ...
def shard_groups(group_ids: _I, n_critics: int, seed: int, mode: str = "disjoint") -> _B: ...
def percentile_masks(
    std: _F,
    low: float = 0.2,
    high: float = 0.2,
    offsets: _I | None = None,
    group_ids: _I | None = None,
    scope: str = "batch",
) -> tuple[_B, _B]: ...
def group_advantages(scores: _F, group_ids: _I, how: str = "grpo", eps: float = 1e-6) -> _F: ...
def broadcast_to_tokens(per_seq: _F | _I | _B, offsets: _I) -> _F | _I | _B: ...
def masked_whiten(x: _F, mask: _B, shift_mean: bool = True) -> _F: ...
def pack_microbatches(
    lengths: _I, max_tokens: int, padded: bool = False, prompt_lengths: _I | None = None
) -> list[_I]: ...
def balanced_partition(lengths: _I, n_parts: int) -> list[_I]: ...
