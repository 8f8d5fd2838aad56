"""The daemon's retained status (``PREFIX/status/scorer/INSTANCE``): the contract's status plus two fields.

The contract's fields (``state``, ``service``, ``instance``, ``version``, ``model``: the default model's name and
version, ``started_at``) and, as the contract allows (consumers ignore fields they do not know):

- ``models``: every loaded model, ``[{"name": ..., "version": ..., "warnings": [...]}]`` sorted by name;
  ``warnings`` are what fitting warned about (`Detector.fit_warnings`): a history too short, or one that does not
  cover the operating range, is said here, where operators look, and not only in ``python -m pdm info``;
- ``model_errors``: one entry per model whose ``current`` names a version the daemon refused to hot-reload,
  ``[{"model", "version", "reason", "ts"}]``; empty when every model's ``current`` version is the one scoring.

The Last Will is the same object with ``state`` offline. Thread-safe: the network thread reads it on every
connection, the scoring thread updates it after a hot reload.

>>> from pdm.contract import ModelRef, Status, parse_status
>>> pump = ModelRef(name="pump", version="v1")
>>> board = StatusBoard(Status(state="online", service="scorer", instance="scorer-0", version="0.1.0",
...                            model=pump, started_at=1.0), "pump", [pump], {"pump": ["short history"]})
>>> board.refused("pump", "v2", "checksum mismatch", ts=2.0)
>>> msg = json.loads(board.payload(online=False))
>>> msg["state"], msg["model_errors"][0]["version"], parse_status(board.payload()).model.version
('offline', 'v2', 'v1')
>>> msg["models"]
[{'name': 'pump', 'version': 'v1', 'warnings': ['short history']}]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pdm.contract import ModelRef, Status


class StatusBoard:
    def __init__(self, base: Status, main: str, refs: Iterable[ModelRef],
                 warnings: Mapping[str, Sequence[str]] | None = None) -> None:
        self._base = base
        self._main = main
        self._models = {r.name: r for r in refs}
        self._warnings = {name: list(w) for name, w in (warnings or {}).items()}
        self._errors: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def service(self) -> str:
        return self._base.service

    @property
    def instance(self) -> str:
        return self._base.instance

    def payload(self, online: bool = True) -> bytes:
        with self._lock:
            status = self._base if online else self._base.offline()
            body: dict[str, Any] = json.loads(status.encode())
            body["models"] = [{**self._models[n].model_dump(), "warnings": self._warnings.get(n, [])}
                              for n in sorted(self._models)]
            body["model_errors"] = [self._errors[n] for n in sorted(self._errors)]
        return json.dumps(body, separators=(",", ":")).encode()

    def loaded(self, ref: ModelRef, warnings: Sequence[str] = ()) -> None:
        """``ref`` is scoring now (fitted with ``warnings``); an earlier refusal for its name no longer applies."""
        with self._lock:
            self._models[ref.name] = ref
            self._warnings[ref.name] = list(warnings)
            self._errors.pop(ref.name, None)
            if ref.name == self._main:
                self._base = self._base.model_copy(update={"model": ref})

    def refused(self, name: str, version: str, reason: str, ts: float) -> None:
        with self._lock:
            self._errors[name] = {"model": name, "version": version, "reason": reason, "ts": ts}

    def resolved(self, name: str) -> None:
        """``current`` names the loaded version again."""
        with self._lock:
            self._errors.pop(name, None)

    def errors(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._errors.values()]
