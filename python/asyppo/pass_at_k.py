"""Sampling-based evaluation metrics: avg@k and the unbiased pass@k estimator."""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct.

    pass@k = 1 - C(n - c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k / i) to avoid
    huge binomials (Chen et al. 2021, "Evaluating Large Language Models Trained on Code",
    section 2.1). Requires 0 <= c <= n and 1 <= k <= n (ValueError otherwise).
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"pass_at_k: {name} must be an int, got {type(value).__name__}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _as_table(correct: np.ndarray) -> np.ndarray:
    table = np.asarray(correct)
    if table.ndim != 2 or table.shape[1] == 0:
        raise ValueError(
            f"correct must be a [n_prompts, n_samples] array with n_samples >= 1, got shape {table.shape}"
        )
    return table.astype(bool)


def avg_at_k(correct: np.ndarray) -> float:
    """avg@k: the mean correctness over all samples of all prompts (``correct`` is
    ``[n_prompts, k]``, bool or 0/1), i.e. the expected accuracy of one sample."""
    table = _as_table(correct)
    return float(table.mean()) if table.size else 0.0


def sample_metrics(correct: np.ndarray, k: int | None = None) -> dict[str, float]:
    """``{"avg@k": .., "pass@k": ..}`` for a ``[n_prompts, n_samples]`` correctness table;
    ``k`` defaults to ``n_samples`` and may be smaller (pass@k is then still unbiased, using all
    n_samples per prompt). Both are means over prompts."""
    table = _as_table(correct)
    n = table.shape[1]
    k = n if k is None else k
    if not 1 <= k <= n:
        raise ValueError(f"sample_metrics: need 1 <= k <= n_samples={n}, got k={k}")
    counts = table.sum(axis=1)
    passes = [pass_at_k(n, int(c), k) for c in counts]
    return {f"avg@{k}": avg_at_k(table), f"pass@{k}": float(np.mean(passes)) if passes else 0.0}
