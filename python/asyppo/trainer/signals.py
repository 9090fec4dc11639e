"""Stopping a run on SIGINT / SIGTERM without losing work.

Inside :class:`GracefulStop` the first SIGINT (Ctrl-C) or SIGTERM (what schedulers and ``docker
stop`` send) only records the signal: the loop finishes the step it is in, writes a checkpoint and
raises :class:`TrainingInterrupted`, which the CLI turns into exit status 128 + signal (130 for
SIGINT, 143 for SIGTERM). A second signal raises ``KeyboardInterrupt`` at once (abort: the roles are
still stopped and their shared memory removed on the way out).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after a checkpoint was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        name = signal.Signals(signum).name
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        super().__init__(f"stopped by {name} after step {step}; {where}")
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class GracefulStop:
    """Records the first stop signal in :attr:`requested`; a second one aborts (module docstring).

    Off the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting")
        self.requested = signum

    def __enter__(self) -> GracefulStop:  # noqa: PYI034 - typing.Self needs Python 3.11
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
