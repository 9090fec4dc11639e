"""The engine's kernels over packed ragged batches, as numpy-or-torch functions.

Each function converts its arguments (``_convert``: types, dtypes, dimensions, Python ints to the
extension's integer types), calls the Rust kernel in ``asyppo._core`` with the GIL released, and
returns numpy arrays, or torch tensors sharing their memory when the main argument was a torch
tensor. Values (lengths, ranges, offsets, option strings) are checked once, by the Rust kernels,
before they allocate their outputs; their errors name the argument. Packed layout: a flat array of ``T`` tokens plus ``offsets``
(int64 ``[N+1]``, ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == T``). The formulas are
in each docstring and in ``docs/data_engine.md``; the algorithm is AsyPPO (arXiv 2510.01656).
"""

from __future__ import annotations

from typing import Any

from asyppo import _core
from asyppo.engine._convert import (
    Kind,
    array,
    float_dtype,
    integer,
    is_torch,
    like,
    like_each,
    real,
    to_numpy,
)

_U64 = (0, 2**64 - 1)
_I64 = (-(2**63), 2**63 - 1)


def gae(
    rewards: Any, values: Any, offsets: Any, gamma: float = 1.0, lam: float = 1.0
) -> tuple[Any, Any]:
    """Generalized advantage estimation over a packed batch (Schulman et al. 2016, arXiv 1506.02438,
    eq. 16; arXiv 2510.01656, Algorithm 1).

    Per sequence ``[a, b)``: ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V_b = 0`` (no value
    after the last token), ``A_t = delta_t + gamma * lam * A_{t+1}``, ``R_t = A_t + V_t``.

    Args:
        rewards, values: ``[T]`` float32 or float64 (mixed inputs run in float64).
        offsets: ``[N+1]`` integer sequence boundaries.
        gamma, lam: discount and GAE lambda in ``[0, 1]``.

    Returns:
        ``(advantages, returns)``, ``[T]`` each, in the input float dtype.

    Raises:
        TypeError: non-float rewards/values, non-integer offsets.
        ValueError: length mismatch, bad offsets, gamma/lam outside [0, 1], NaN/inf inputs.
    """
    r = array(rewards, "rewards", "float")
    v = array(values, "values", "float")
    dtype = float_dtype(r, v)
    r, v = r.astype(dtype, copy=False), v.astype(dtype, copy=False)
    o = array(offsets, "offsets", "int")
    adv, ret = _core.gae(r, v, o, real(gamma, "gamma"), real(lam, "lam"))
    return like(adv, is_torch(rewards)), like(ret, is_torch(rewards))


def aggregate_values(values: Any, how: str = "mean") -> tuple[Any, Any]:
    """Aggregate the critics' per-token values (arXiv 2510.01656, Algorithm 1).

    ``value_t = mean_m V_m(t)`` (``how="mean"``) or ``min_m V_m(t)`` (``how="min"``), and
    ``std_t = sqrt(mean_m (V_m(t) - mean_m V_m(t))^2)``, the population std (ddof=0).

    Args:
        values: ``[M, T]`` float32 or float64, one row per critic.
        how: ``"mean"`` or ``"min"``.

    Returns:
        ``(value, std)``, ``[T]`` each, in the input dtype.

    Raises:
        TypeError: not a float array. ValueError: not 2-D, M < 1, NaN/inf, unknown ``how``.
    """
    a = array(values, "values", "float", ndim=2)
    value, std = _core.aggregate_values(a, how)
    return like(value, is_torch(values)), like(std, is_torch(values))


def shard_groups(group_ids: Any, n_critics: int, seed: int, mode: str = "disjoint") -> Any:
    """Assign each response to the critics that train on it (arXiv 2510.01656, Algorithm 1).

    ``disjoint``: within every group (in order of first appearance) the responses are shuffled by a
    SplitMix64 generator seeded with ``seed`` (one stream for the whole batch) and dealt
    round-robin, the dealing position carrying over from group to group; each critic gets
    ``floor(n_g/M)`` or ``ceil(n_g/M)`` of every group, the shards are disjoint and cover the
    batch, and critics' totals differ by at most one. ``shared``: every critic gets everything.
    ``random``: the whole batch is shuffled and dealt, ignoring groups. Same inputs and seed, same
    shards, on every platform (``docs/data_engine.md``).

    Args:
        group_ids: ``[N]`` integer prompt ids. n_critics: M in ``[1, 2**16]``.
        seed: integer in ``[0, 2**64)``.

    Returns:
        bool ``[M, N]``; row m marks critic m's sequences.

    Raises:
        TypeError: non-integer ids/n_critics/seed. ValueError: M outside ``[1, 2**16]``, seed out
        of range, unknown mode.
    """
    ids = array(group_ids, "group_ids", "int")
    m = integer(n_critics, "n_critics", *_I64)
    out = _core.shard_groups(ids, m, integer(seed, "seed", *_U64), mode)
    return like(out, is_torch(group_ids))


def percentile_masks(
    std: Any,
    low: float = 0.2,
    high: float = 0.2,
    offsets: Any = None,
    group_ids: Any = None,
    scope: str = "batch",
) -> tuple[Any, Any]:
    """Exact-count masks from the critics' disagreement (arXiv 2510.01656, equation 5).

    Within each scope of ``n`` tokens (the batch, each sequence, or each group's tokens), the
    ``floor(low * n)`` tokens with the lowest ``std`` get ``adv_keep = False`` (their advantage is
    masked) and the ``floor(high * n)`` with the highest get ``ent_keep = False`` (left out of the
    entropy bonus). Tokens are ordered by ``(std, position)``, so ties go to the earlier token for
    the low mask and the later for the high one; the counts are exact and the sets disjoint.
    O(T) selection, no full sort: sample (batch) or histogram (sequence) brackets of the two
    thresholds, one counting pass, exact selection among the values inside the brackets.

    Args:
        std: ``[T]`` float32/float64 critic std per token.
        low, high: fractions in ``[0, 1]`` with ``low + high <= 1``.
        offsets: ``[N+1]`` integers, required for ``scope="sequence"`` and ``"group"``.
        group_ids: ``[N]`` integers, required for ``scope="group"``.
        scope: ``"batch"``, ``"group"`` or ``"sequence"``.

    Returns:
        ``(adv_keep, ent_keep)``, bool ``[T]`` each.

    Raises:
        TypeError: wrong dtypes. ValueError: fractions out of range, missing/bad offsets or
        group_ids, NaN/inf std, unknown scope.
    """
    s = array(std, "std", "float")
    o = None if offsets is None else array(offsets, "offsets", "int")
    g = None if group_ids is None else array(group_ids, "group_ids", "int")
    adv, ent = _core.percentile_masks(s, real(low, "low"), real(high, "high"), o, g, scope)
    return like(adv, is_torch(std)), like(ent, is_torch(std))


def group_advantages(scores: Any, group_ids: Any, how: str = "grpo", eps: float = 1e-6) -> Any:
    """Per-sequence advantages from a group baseline (critic-free methods).

    With ``r`` a response's score and ``mean_g``/``std_g`` over its group (``std`` unbiased):
    ``grpo``: ``(r - mean_g) / (std_g + eps)`` (DeepSeekMath, arXiv 2402.03300 §4.1.2);
    ``drgrpo``: ``r - mean_g`` (Dr.GRPO, arXiv 2503.20783 §3.1);
    ``rloo``: ``r - mean of the other responses of the group`` (RLOO, arXiv 2402.14740 §3).
    A group of one response gets 0.

    Args:
        scores: ``[N]`` float32/float64. group_ids: ``[N]`` integers. eps: >= 0.

    Returns:
        ``[N]`` advantages in the dtype of ``scores``.

    Raises:
        TypeError: wrong dtypes. ValueError: length mismatch, NaN/inf, eps < 0, unknown ``how``.
    """
    out = _core.group_advantages(
        array(scores, "scores", "float"),
        array(group_ids, "group_ids", "int"),
        how,
        real(eps, "eps"),
    )
    return like(out, is_torch(scores))


def broadcast_to_tokens(per_seq: Any, offsets: Any) -> Any:
    """Repeat each sequence's value over its tokens: ``out[t] = per_seq[s]`` for ``t`` in sequence ``s``.

    Args:
        per_seq: ``[N]`` float32, float64, integer (as int64) or bool. offsets: ``[N+1]`` integers.

    Returns:
        ``[T]`` with ``T = offsets[-1]``, dtype of ``per_seq`` (integers become int64).

    Raises:
        TypeError: other dtypes. ValueError: bad offsets, ``len(per_seq) != N``.
    """
    p = to_numpy(per_seq, "per_seq")
    kind: Kind = "bool" if p.dtype.kind == "b" else "int" if p.dtype.kind in "iu" else "float"
    out = _core.broadcast_to_tokens(array(p, "per_seq", kind), array(offsets, "offsets", "int"))
    return like(out, is_torch(per_seq))


def masked_whiten(x: Any, mask: Any, shift_mean: bool = True) -> Any:
    """Whiten ``x`` with the mean and variance of its masked elements.

    ``out = (x - mean) / sqrt(var + 1e-8)`` (``+ mean`` when ``shift_mean`` is False), where
    ``mean`` and the unbiased ``var`` are over the elements with ``mask`` true (accumulated in
    float64). Every element is transformed, masked or not — as in TRL and verl.

    Args:
        x: float32/float64 of any shape. mask: bool (or numbers, nonzero = True), same shape.

    Returns:
        Same shape and dtype as ``x``.

    Raises:
        TypeError: wrong dtypes. ValueError: shape mismatch, fewer than 2 masked elements, NaN/inf.
    """
    a = array(x, "x", "float", ndim=None)
    m = array(mask, "mask", "bool", ndim=None)
    if m.shape != a.shape:
        raise ValueError(f"mask: expected shape {a.shape} (as x), got {m.shape}")
    out = _core.masked_whiten(a.reshape(-1), m.reshape(-1), bool(shift_mean)).reshape(a.shape)
    return like(out, is_torch(x))


def pack_microbatches(
    lengths: Any, max_tokens: int, padded: bool = False, prompt_lengths: Any = None
) -> list[Any]:
    """Split sequence indices into micro-batches whose token cost stays within ``max_tokens``.

    Cost: sum of lengths (``padded=False``, packed input) or ``count * max length``
    (``padded=True``, the size of the ``[B, L]`` padded tensor). With ``prompt_lengths``, every
    sequence also has a prompt padded on its own: the padded cost is
    ``count * (max prompt length + max length)``, the size of a ``[B, P + R]`` input whose prompts
    are left-padded to ``P`` and the rest right-padded to ``R`` (``TrajectoryBuffer``'s
    ``prompt_side="left"`` layout), and the summed cost counts both. Best-fit decreasing (next-fit
    over decreasing total lengths when padded). No micro-batch exceeds the budget unless one
    sequence alone does, in which case it is alone (costs are exact for any int64 lengths).
    Indices within a micro-batch are ascending.

    Args:
        lengths: ``[N]`` non-negative integers. max_tokens: >= 1.
        prompt_lengths: optional ``[N]`` non-negative integers.

    Returns:
        A list of int64 index arrays covering ``range(N)`` exactly once.

    Raises:
        TypeError: non-integer input. ValueError: negative length, ``prompt_lengths`` of another
        length, ``max_tokens < 1``.
    """
    lens = array(lengths, "lengths", "int")
    budget = integer(max_tokens, "max_tokens", *_I64)
    prompts = None if prompt_lengths is None else array(prompt_lengths, "prompt_lengths", "int")
    parts = _core.pack_microbatches(lens, budget, bool(padded), prompts)
    return like_each(parts, is_torch(lengths))


def balanced_partition(lengths: Any, n_parts: int) -> list[Any]:
    """Split sequence indices into ``n_parts`` parts with token sums as equal as possible.

    E.g. to give every data-parallel rank the same number of tokens. Longest processing time
    first (Graham 1969): sequences by decreasing length (ties by index), each to the part with the
    smallest sum so far (ties to the lowest part). The spread (max - min part sum) is at most the
    longest length, and the heaviest part at most ``4/3`` of the optimum. Parts are ordered by
    decreasing token sum; the indices within a part are ascending; the result is deterministic.
    See ``docs/data_engine.md``.

    Args:
        lengths: ``[N]`` non-negative integers. n_parts: in ``[1, 2**16]``.

    Returns:
        ``n_parts`` int64 index arrays covering ``range(N)`` exactly once (some may be empty).

    Raises:
        TypeError: non-integer input. ValueError: negative length, lengths summing past
        ``2**63 - 1``, ``n_parts`` outside ``[1, 2**16]``.
    """
    lens = array(lengths, "lengths", "int")
    parts = _core.balanced_partition(lens, integer(n_parts, "n_parts", *_I64))
    return like_each(parts, is_torch(lengths))
