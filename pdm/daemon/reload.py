"""Model hot reload: a background thread watches each model's ``current`` and prepares new versions; the scoring
thread swaps them in between micro-batches.

Rules:

- Every ``--reload-interval`` seconds (0: never) the watcher reads ``MODELS/NAME/current`` of every model in use.
  When it names a version other than the one scoring, the watcher loads it (checksums verified, as at start),
  warms it up (``--warm-up``), and checks that it fits the machines the old version scores
  (`pdm.daemon.models.misfit`: no new sensors, a valid threshold, a finite score for a window of medians).
- A version that loads and fits is handed to the scoring thread, which swaps it in after the micro-batch it is
  scoring (`pdm.daemon.scoring.Scorer.swap`): every window scored from then on, and every alert and state
  published, carries the new version. Open alerts stay open (same ``alert_id``); how each machine's window goes on
  is `pdm.daemon.machines.MachineState.rebase` (the stream's part: `pdm.detectors.stream.WindowStream.rebase`).
- A version that fails to load (missing or changed file, bad manifest, unreadable ``current``) or does not fit is
  refused: logged with the reason, counted (``pdm_model_reloads_total{result="refused"}``), listed in the status's
  ``model_errors``, and the old version keeps scoring. Saved versions never change, so a refused version is not
  tried again while ``current`` names it; pointing ``current`` at another version (or back at the one scoring,
  which clears the error) is what moves things on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pdm.daemon.models import ModelSlot, load_slot, misfit
from pdm.errors import PdmError
from pdm.saving.model_dir import CURRENT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """A new version, loaded, warmed up and checked: to be swapped in."""

    slot: ModelSlot
    seconds: float


@dataclass(frozen=True)
class Refused:
    name: str
    version: str
    reason: str
    ts: float


@dataclass(frozen=True)
class Resolved:
    """``current`` names the version that is scoring again: an earlier refusal no longer applies."""

    name: str


Result = Loaded | Refused | Resolved


class ModelWatcher:
    """Watches the models in use; results go to ``results`` for the scoring thread (`Daemon` applies them)."""

    def __init__(self, models_dir: Path, slots: dict[str, ModelSlot], interval: float, warm_up: bool,
                 engine: str = "auto") -> None:
        self.models_dir, self.interval, self.warm_up, self.engine = models_dir, interval, warm_up, engine
        self.results: queue.Queue[Result] = queue.Queue()
        self._latest = dict(slots)  # name -> the newest version that loaded (swapped in, or about to be)
        self._tried = {n: s.ref.version for n, s in slots.items()}  # name -> the version `current` last named
        self._refused: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pdm-model-reload", daemon=True)

    def start(self) -> None:
        if self.interval <= 0:
            logger.info("model hot reload is off (--reload-interval 0)")
            return
        self._thread.start()
        logger.info("watching %s for new model versions every %g s", ", ".join(sorted(self._latest)),
                    self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name in list(self._latest):
                if self._stop.is_set():
                    return
                try:
                    result = self.check(name)
                except Exception:  # never end the watcher; the next poll tries again
                    logger.exception("checking model %s for a new version failed", name)
                    continue
                if result is not None:
                    self.results.put(result)

    def check(self, name: str) -> Result | None:
        """One look at ``name``'s ``current`` (the watcher thread, or a test): what changed, if anything."""
        current = self.models_dir / name / CURRENT
        try:
            version = current.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = f"cannot read {current} ({getattr(exc, 'strerror', None) or exc})"
            return self._refuse(name, "?", reason) if self._tried.get(name) != "?" else None
        if version == self._latest[name].ref.version:
            self._tried[name] = version
            if name in self._refused:
                self._refused.discard(name)
                logger.info("model %s: current names version %s again, the one scoring", name, version)
                return Resolved(name)
            return None
        if version == self._tried.get(name):
            return None  # refused already: a saved version never changes
        self._tried[name] = version
        return self._load(name, version)

    def _load(self, name: str, version: str) -> Result:
        old = self._latest[name]
        logger.info("model %s: current names version %s (scoring: %s); loading it", name, version, old.ref.version)
        t0 = time.monotonic()
        try:
            slot = load_slot(self.models_dir, name, self.warm_up, version, engine=self.engine)
            reason = misfit(old, slot)
        except PdmError as exc:
            reason = str(exc)
        except Exception as exc:  # a damaged weights file can raise anything from the framework
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            return self._refuse(name, version, reason)
        self._latest[name] = slot
        self._refused.discard(name)
        seconds = time.monotonic() - t0
        logger.info("model %s: version %s loaded, checked and warmed up in %.1f s; swapping it in", name, version,
                    seconds)
        return Loaded(slot, seconds)

    def _refuse(self, name: str, version: str, reason: str) -> Refused:
        self._tried[name] = version
        self._refused.add(name)
        logger.error("model %s: refusing version %s: %s; version %s keeps scoring", name, version, reason,
                     self._latest[name].ref.version)
        return Refused(name, version, reason, time.time())
