"""Progress of a retrain or a training (``python -m pdm retrain`` and ``train``): a rich bar per stage on an
interactive terminal, plain log lines otherwise.

``with make_progress(sys.stderr.isatty()) as progress:`` opens the display and closes it; a stage is
``with progress.stage("scoring holdout", total=n) as advance: ... advance(1)``; a stage whose name starts with
"training" counts the epochs reported through ``progress.epoch`` (the detector's ``progress`` callback).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)

Advance = Callable[[int], None]


class _Display:
    """``with``: the display is closed on leaving."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class LogProgress(_Display):
    """One log line when a stage starts and ends (INFO on this module's logger, below ``pdm.retrain``); epochs are
    logged by the detector itself."""

    def __init__(self) -> None:
        self.epoch_total = 0

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        started = time.monotonic()
        logger.info("%s%s ...", name, f" ({total})" if total else "")

        def advance(n: int = 1) -> None:
            """Stages are logged at their start and end only."""

        yield advance
        logger.info("%s done in %.1f s", name, time.monotonic() - started)

    def epoch(self, epoch: int, epochs: int, figures: dict[str, float]) -> None:
        """The detector logs its epochs; nothing more to say."""


class RichProgress(_Display):
    """A rich progress display: one bar per stage, the training bar counting epochs."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description:24s}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[figures]}"), TimeElapsedColumn(), transient=False)
        self._bar.start()
        self._training: Any = None

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        task = self._bar.add_task(name, total=total or 1, figures="")
        if name.startswith("training"):
            self._training = task

        def advance(n: int = 1) -> None:
            self._bar.advance(task, n)

        yield advance
        self._bar.update(task, completed=self._bar.tasks[task].total)
        if self._training == task:
            self._training = None

    def epoch(self, epoch: int, epochs: int, figures: dict[str, float]) -> None:
        if self._training is not None:
            text = " ".join(f"{k}={v:.4g}" for k, v in figures.items())
            self._bar.update(self._training, completed=epoch, total=epochs, figures=text)

    def close(self) -> None:
        self._bar.stop()


Reporter = LogProgress | RichProgress


def make_progress(interactive: bool) -> Reporter:
    """Rich bars on a terminal; otherwise log lines (the ``pdm.retrain`` and training loggers set to INFO)."""
    if interactive:
        return RichProgress()
    for name in ("pdm.retrain", "pdm.detectors.gru"):
        if logging.getLogger(name).getEffectiveLevel() > logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)
    return LogProgress()
