"""`RewardRunner`: scores a batch of responses in a worker process under a per-response time limit.

Why a process: a reward (math-verify's sympy, a user function) can hang in C code where no
exception reaches it, and signal-based timeouts (math-verify's own) only work on the main thread
of the main interpreter. A separate process can always be killed, from any thread. The worker is
a fresh interpreter (``python -c``, talking over two private pipes): never ``fork`` (the trainer
process holds torch thread pools), and not multiprocessing's ``spawn`` either, which re-runs the
caller's ``__main__`` script in the child. It starts when the runner is built, so its imports
overlap with model loading, and it is restarted after a timeout or a crash; the rest of the
batch continues in the new worker.

``reward.user_fn`` is imported only in the worker, under ``reward.timeout_s`` like scoring: a user
module that hangs or calls ``os._exit`` at import stops the worker, never the trainer, and the
failure comes back as a `RewardError` holding the worker's traceback.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from asyppo.rewards.config import RewardConfig
from asyppo.rewards.scoring import ResponseScorer, UserRewardError
from asyppo.rewards.user import UserReward, check_user_reward_spec, load_user_reward
from asyppo.rewards.verifiers import final_answer

logger = logging.getLogger(__name__)

# Importing asyppo and math-verify (sympy) in a fresh interpreter is not the reward's fault: this
# limit is generous. Importing reward.user_fn is the user's code: it gets reward.timeout_s, as
# scoring one response does.
_STARTUP_TIMEOUT_S = 120.0


class RewardError(RuntimeError):
    """The reward cannot score: its worker fails to start or to import ``reward.user_fn`` (the
    message holds the worker's traceback), or every response of a batch failed to score."""


@dataclass(frozen=True)
class RewardOutput:
    """Scores of a batch of N responses.

    scores: float32 [N] (0 where scoring failed); correct: bool [N] (the verifier's verdict, also
    where only the user reward failed); n_errors / n_timeouts: how many responses scored 0
    because their reward raised, returned no finite number or killed the worker / ran past
    ``timeout_s``; first_error: the first failure's message, for the log; answered: bool [N],
    whether the verifier found an answer to check (a closed ``\\boxed{}``, or what
    ``reward.answer_fallback`` reads), None with ``verifier: none``.
    """

    scores: np.ndarray
    correct: np.ndarray
    n_errors: int
    n_timeouts: int
    first_error: str | None = None
    answered: np.ndarray | None = None

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat metrics: mean score, accuracy, error and timeout counts, answered fraction."""
        n = max(len(self.scores), 1)
        metrics = {
            f"{prefix}/mean": float(self.scores.sum()) / n,
            f"{prefix}/accuracy": float(self.correct.sum()) / n,
            f"{prefix}/n_errors": float(self.n_errors),
            f"{prefix}/n_timeouts": float(self.n_timeouts),
        }
        if self.answered is not None:
            metrics[f"{prefix}/answered"] = float(self.answered.sum()) / n
        return metrics

    def unanswered_warning(self, where: str) -> str | None:
        """A warning when no response of a non-empty batch gives the verifier an answer to check
        (every correctness reward is then 0, whatever the model knows); None otherwise."""
        if self.answered is None or len(self.answered) == 0 or self.answered.any():
            return None
        return (
            f"{where}: none of the {len(self.answered)} responses gives an answer the verifier can "
            "read (a closed \\boxed{...}), so every one scores as wrong. Prompt the model to end with "
            "\\boxed{answer} (data.system_prompt), or set reward.answer_fallback=last_number."
        )


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Worker entry point: read the config, import what scoring needs ("ready"), then the user
    reward ("loaded"), then serve lists of (response, answer), sending one result per item.
    A failure to start is sent as ("fatal", traceback)."""
    inbox, conn = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        cfg = RewardConfig.model_validate_json(inbox.recv())
        if cfg.verifier == "math":
            import math_verify  # noqa: F401  (pay the sympy import before the clock starts)
    except Exception:  # noqa: BLE001 (reported to the parent, which raises it)
        conn.send(("fatal", traceback.format_exc()))
        return
    conn.send(("ready", None))
    user: UserReward | None = None
    if cfg.user_fn is not None:
        try:
            user = load_user_reward(cfg.user_fn)
        except BaseException:  # noqa: BLE001 (SystemExit at import included)
            conn.send(("fatal", traceback.format_exc()))
            return
        conn.send(("loaded", None))
    scorer = ResponseScorer(cfg, user)
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
            except UserRewardError as exc:
                conn.send(("error", str(exc), traceback.format_exc(), exc.correct))
            except Exception as exc:  # noqa: BLE001 (any reward failure is a counted 0)
                conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(), False))


class RewardRunner:
    """Scores responses with `ResponseScorer` in a killable worker, from any thread.

    A response whose reward fails scores 0 and is counted; the first failure of the runner's life
    is logged once with the worker's traceback (``logging`` warning on ``asyppo.rewards.runner``).
    `score` raises `RewardError` only when the reward cannot score at all: the worker cannot start
    or import ``reward.user_fn`` (within ``timeout_s``), or every response of the batch failed.
    Use as a context manager or call `close` (the worker also exits on its own when this process's
    end of the pipe closes).
    """

    def __init__(self, cfg: RewardConfig) -> None:
        if cfg.user_fn is not None:
            check_user_reward_spec(cfg.user_fn)  # a malformed spec fails here; importing is the worker's
        self.cfg = cfg
        self._cfg_json = cfg.model_dump_json()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: Connection | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._reported = False
        # Set when the worker cannot start or import the user reward: restarting it would fail
        # the same way, so every later call raises the same error straight away.
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
        self._ready = False

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        for conn in (self._outbox, self._conn):
            if conn is not None:
                conn.close()
        self._proc, self._outbox, self._conn, self._ready = None, None, None, False

    def _exit_code(self) -> int | None:
        """The worker's exit code once its pipe closed (None if it is somehow still running)."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _expect(self, kind: str, timeout: float, doing: str, limit: str) -> None:
        assert self._conn is not None
        if not self._conn.poll(timeout):
            raise RewardError(f"the reward worker did not {doing} within {timeout:g}s ({limit})")
        try:
            got, payload = self._conn.recv()
        except (EOFError, OSError):
            raise RewardError(
                f"the reward worker exited (exit code {self._exit_code()}) before it could {doing}; "
                "anything it printed is above"
            ) from None
        if got == "fatal":
            raise RewardError(f"the reward worker could not {doing}:\n{payload}")
        assert got == kind, (got, kind)

    def wait_ready(self) -> None:
        """Start the worker if needed and wait until it has imported everything, the user
        reward included. Raises `RewardError` with the worker's traceback when it cannot."""
        if self._broken is not None:
            raise RewardError(self._broken)
        if self._proc is None:
            self._start()
        if self._ready:
            return
        try:
            self._expect("ready", _STARTUP_TIMEOUT_S, "import asyppo and the verifier", "start-up limit")
            if self.cfg.user_fn is not None:
                doing = f"import reward.user_fn {self.cfg.user_fn!r}"
                self._expect("loaded", self.cfg.timeout_s, doing, "reward.timeout_s")
        except RewardError as exc:
            self._kill()
            self._broken = str(exc)
            raise
        self._ready = True

    def _report(self, message: str, details: str | None) -> None:
        """Log the first failure of this runner's life, with its traceback; later ones are only
        counted (``reward/n_errors``, ``reward/n_timeouts``)."""
        if not self._reported:
            self._reported = True
            logger.warning(
                "reward: a response failed to score (%s); it scores 0. Later failures are only "
                "counted in reward/n_errors and reward/n_timeouts.%s",
                message, f"\n{details.rstrip()}" if details else "",
            )

    def score(self, responses: Sequence[str], answers: Sequence[str]) -> RewardOutput:
        """Score ``responses[i]`` against ``answers[i]``; lengths must match (ValueError).

        Raises `RewardError` when the worker cannot start or when all of a non-empty batch failed.
        """
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
                self.wait_ready()
                assert self._outbox is not None and self._conn is not None
                try:
                    self._outbox.send(items[i:])
                except OSError:  # the worker died between batches: start afresh
                    self._kill()
                    continue
                while i < n:
                    failure: tuple[str, str | None] | None = None
                    try:
                        if not self._conn.poll(self.cfg.timeout_s):
                            n_timeouts += 1
                            failure = (f"reward timed out after {self.cfg.timeout_s}s on item {i}", None)
                        else:
                            kind, *payload = self._conn.recv()
                    except (EOFError, OSError):
                        n_errors += 1
                        failure = (f"the reward worker died (exit code {self._exit_code()}) on item {i}", None)
                    if failure is not None:  # the worker is hung or gone: the rest goes to a new one
                        first_error = first_error or failure[0]
                        self._report(*failure)
                        self._kill()
                        i += 1
                        break
                    if kind == "ok":
                        scores[i], correct[i] = payload
                    else:
                        message, details, correct[i] = payload
                        n_errors += 1
                        first_error = first_error or message
                        self._report(message, details)
                    i += 1
        if n and n_errors + n_timeouts == n:
            raise RewardError(
                f"reward: all {n} responses of the batch failed to score ({n_errors} errors, "
                f"{n_timeouts} timeouts); the first: {first_error}"
            )
        answered = None
        if self.cfg.verifier != "none":
            fallback = self.cfg.answer_fallback
            answered = np.fromiter((final_answer(r, fallback) is not None for r in responses), bool, count=n)
        return RewardOutput(scores, correct, n_errors, n_timeouts, first_error, answered)

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
