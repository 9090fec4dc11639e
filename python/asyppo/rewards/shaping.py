"""Length-based reward shaping: DAPO's soft overlong punishment."""

from __future__ import annotations

import math

import numpy as np


def overlong_penalty(
    lengths: np.ndarray, *, max_length: int, buffer: int, factor: float = 1.0
) -> np.ndarray:
    """float32 ``[N]``: the soft overlong punishment of responses of ``lengths`` tokens.

    DAPO (Yu et al. 2025, arXiv 2503.14476, §3.4 "Overlong Reward Shaping", eq. 13), with
    ``L_max = max_length`` (the generation budget) and ``L_cache = buffer``::

        R_length(y) = 0                                    if |y| <= L_max - L_cache
                    = ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
                    = -1                                   if L_max < |y|

    times ``factor`` (verl's ``overlong_buffer.penalty_factor``), to be added to the verifier's
    score. The penalty falls linearly from 0 at ``L_max - L_cache`` tokens to ``-factor`` at
    ``L_max``, so among responses that fit the budget the longer ones score less, without the
    cliff of a fixed score at the limit.

    ``lengths``: integer ``[N]``, response tokens (EOS included, as the sampler counts them).
    Raises TypeError for non-integer ``lengths`` and ValueError for a negative length, a
    ``max_length`` below 1, a ``buffer`` outside ``[1, max_length]`` or a ``factor`` that is
    negative or not finite.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D [N], got shape {lengths.shape}")
    if lengths.size and not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths must be integer token counts, got dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise ValueError(f"lengths must be >= 0, got {lengths.min()}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if not 1 <= buffer <= max_length:
        raise ValueError(f"buffer must be in [1, max_length={max_length}], got {buffer}")
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"factor must be finite and >= 0, got {factor}")
    start = max_length - buffer
    # The clip at -1 is eq. 13's third case; within the budget it never binds.
    ramp = np.clip((start - lengths.astype(np.float64)) / buffer, -1.0, 0.0)
    return (factor * ramp).astype(np.float32)
