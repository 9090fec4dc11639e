"""`RewardRunner`: scores a batch of responses in a worker process under a per-response time limit.

Why a process: a reward (math-verify's sympy, a user function) can hang in C code where no
exception reaches it, and signal-based timeouts (math-verify's own) only work on the main thread
of the main interpreter. A separate process can always be killed, from any thread. The worker is
a fresh interpreter (``python -c``, talking over two private pipes): never ``fork`` (the trainer
process holds torch thread pools), and not multiprocessing's ``spawn`` either, which re-runs the
caller's ``__main__`` script in the child. It starts when the runner is built, so its imports
overlap with model loading, and it is restarted after a timeout or a crash; the rest of the
batch continues in the new worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from asyppo.rewards.config import RewardConfig
from asyppo.rewards.scoring import ResponseScorer
from asyppo.rewards.user import load_user_reward

# Imports in a fresh interpreter (sympy, user modules) are not the reward's fault: the first
# item's time limit only starts once the worker reports it is ready.
_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RewardOutput:
    """Scores of a batch of N responses.

    scores: float32 [N] (0 where scoring failed); correct: bool [N] (the verifier's verdict);
    n_errors / n_timeouts: how many responses scored 0 because their reward raised (or the
    worker died) / ran past ``timeout_s``; first_error: the first error message, for the log.
    """

    scores: np.ndarray
    correct: np.ndarray
    n_errors: int
    n_timeouts: int
    first_error: str | None = None

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat metrics: mean score, accuracy, error and timeout counts."""
        n = max(len(self.scores), 1)
        return {
            f"{prefix}/mean": float(self.scores.sum()) / n,
            f"{prefix}/accuracy": float(self.correct.sum()) / n,
            f"{prefix}/n_errors": float(self.n_errors),
            f"{prefix}/n_timeouts": float(self.n_timeouts),
        }


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Worker entry point: read the config, then serve lists of (response, answer), sending one
    result message per item."""
    inbox, conn = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        cfg = RewardConfig.model_validate_json(inbox.recv())
        scorer = ResponseScorer(cfg)
        if cfg.verifier == "math":
            import math_verify  # noqa: F401  (pay the sympy import before the clock starts)
    except Exception as exc:  # noqa: BLE001 (reported to the parent, which scores all as errors)
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            batch = inbox.recv()
        except EOFError:  # the parent went away
            return
        if batch is None:
            return
        for response, answer in batch:
            try:
                conn.send(("ok", *scorer(response, answer)))
            except Exception as exc:  # noqa: BLE001 (any reward failure is a counted 0)
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class RewardRunner:
    """Scores responses with `ResponseScorer` in a killable worker; `score` never raises on a
    failing reward, and may be called from any thread. Use as a context manager or call `close`
    (the worker also exits on its own when this process's end of the pipe closes).
    """

    def __init__(self, cfg: RewardConfig) -> None:
        if cfg.user_fn is not None:
            load_user_reward(cfg.user_fn)  # a bad spec fails here, in the caller, with its message
        self.cfg = cfg
        self._cfg_json = cfg.model_dump_json()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: Connection | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._fatal: str | None = None
        # Set when the worker reports that the config itself cannot be served: restarting it
        # would fail the same way, so every later item is scored as an error straight away.
        self._broken: str | None = None
        self._start()

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        # The child must import what the caller can (asyppo itself, user reward modules).
        path = [p or os.getcwd() for p in sys.path]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        code = "import sys; from asyppo.rewards.runner import _worker_main as m; m(*map(int, sys.argv[1:]))"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, str(to_child_r), str(to_parent_w)],
            pass_fds=(to_child_r, to_parent_w),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(to_parent_w)
        self._outbox = Connection(to_child_w, readable=False)
        self._conn = Connection(to_parent_r, writable=False)
        self._outbox.send(self._cfg_json)
        self._ready, self._fatal = False, None

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        for conn in (self._outbox, self._conn):
            if conn is not None:
                conn.close()
        self._proc, self._outbox, self._conn, self._ready = None, None, None, False

    def _wait_ready(self) -> bool:
        """Start the worker if needed and wait for its hello; False if it cannot start."""
        if self._broken is not None:
            self._fatal = self._broken
            return False
        if self._proc is None:
            self._start()
        if self._ready:
            return True
        assert self._conn is not None
        try:
            if self._conn.poll(_STARTUP_TIMEOUT_S):
                kind, message = self._conn.recv()
                if kind == "ready":
                    self._ready = True
                    return True
                self._fatal = self._broken = message
            else:
                self._fatal = f"reward worker did not start within {_STARTUP_TIMEOUT_S:.0f}s"
        except (EOFError, OSError) as exc:
            self._fatal = f"reward worker died at start-up ({type(exc).__name__})"
        self._kill()
        return False

    def score(self, responses: Sequence[str], answers: Sequence[str]) -> RewardOutput:
        """Score ``responses[i]`` against ``answers[i]``; lengths must match (ValueError)."""
        if len(responses) != len(answers):
            raise ValueError(
                f"RewardRunner.score: {len(responses)} responses but {len(answers)} answers"
            )
        n = len(responses)
        scores = np.zeros(n, dtype=np.float32)
        correct = np.zeros(n, dtype=bool)
        n_errors = n_timeouts = 0
        first_error: str | None = None
        items = list(zip(responses, answers))
        with self._lock:
            i = 0
            while i < n:
                if not self._wait_ready():
                    first_error = first_error or self._fatal
                    n_errors += n - i
                    break
                assert self._outbox is not None and self._conn is not None
                try:
                    self._outbox.send(items[i:])
                except OSError:  # the worker died between batches: start afresh
                    self._kill()
                    continue
                while i < n:
                    try:
                        if not self._conn.poll(self.cfg.timeout_s):
                            n_timeouts += 1
                            first_error = first_error or (
                                f"reward timed out after {self.cfg.timeout_s}s on item {i}"
                            )
                            self._kill()
                            i += 1
                            break
                        kind, *payload = self._conn.recv()
                    except (EOFError, OSError):
                        n_errors += 1
                        first_error = first_error or f"reward worker died on item {i}"
                        self._kill()
                        i += 1
                        break
                    if kind == "ok":
                        scores[i], correct[i] = payload
                    else:
                        n_errors += 1
                        first_error = first_error or payload[0]
                    i += 1
        return RewardOutput(scores, correct, n_errors, n_timeouts, first_error)

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        with self._lock:
            if self._outbox is not None and self._proc is not None and self._ready:
                try:
                    self._outbox.send(None)
                    self._proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()

    def __enter__(self) -> RewardRunner:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        # At interpreter shutdown close() may fail; the worker then sees EOF and exits by itself.
        except Exception:  # noqa: BLE001, S110
            pass


def build_reward_fn(cfg: RewardConfig) -> RewardRunner:
    """The reward role's scorer for ``cfg`` (its worker process is started right away)."""
    if not isinstance(cfg, RewardConfig):
        raise TypeError(f"build_reward_fn: cfg must be a RewardConfig, got {type(cfg).__name__}")
    return RewardRunner(cfg)
