"""One MQTT message to rows: validate it with the contract's parsers and add it to its table's buffer.

Rules (each message handled in its own ``try``; nothing here can stop the recorder):

- A message that fails validation is counted by reason (``rejected.<reason>``, the contract's reason codes plus
  ``oversized`` and ``internal``), logged rate-limited, and recorded in the ``rejected`` table, never as data.
- Telemetry must carry every sensor of the recorder's sensor set (``null`` allowed); extra fields are counted
  (``extra_fields``), not stored.
- States are recorded on transitions only: a state equal to the machine's last recorded one in ``state``,
  ``since``, ``alert_id`` and ``instance`` (a heartbeat) is counted (``states_unchanged``) and skipped.
- An empty maintenance payload (the retained window cleared) is a row with ``cleared`` true.
- ``scores`` payloads are not specified by the contract; the daemon's shape is validated here (``machine_id``,
  ``ts``, ``score`` required).
- Every time that dates a row (its partition) is from 2000 to before 2100 (``bad_timestamp``) and, with
  ``max_clock_skew`` > 0, within that many seconds of the receive time (``clock_skew``): telemetry, scores,
  alerts and truth by their ``ts``; a state by its ``ts``, and its ``since`` may not be ahead of the receive time
  by more (a state that has lasted a month is fine). Maintenance windows are announced ahead and retained, so
  their ``from`` and ``until`` are held to the 2000-2099 range only.
- A rejection's stored topic is cut to 1024 characters (the detail to 1000, the excerpt to 200 bytes).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from pdm.contract import (
    SENSORS,
    Message,
    ModelRef,
    Rejected,
    Telemetry,
    Topics,
    decode_object,
    parse_alert,
    parse_maintenance,
    parse_state,
    parse_status,
    parse_telemetry,
    parse_truth,
)
from pdm.contract._decode import raise_validation, short
from pdm.contract.errors import (
    ContractError,
    MachineMismatchError,
    MissingFieldError,
    PayloadError,
    SchemaVersionError,
)
from pdm.contract.limits import MAX_TOPIC, check_clock_skew, check_times
from pdm.contract.messages import Epoch, Name, Shares
from pdm.logs import RateLimitedLog
from pdm.recorder.buffers import RowBuffer, TelemetryBuffer
from pdm.recorder.counters import Counters
from pdm.recorder.link import RecorderMessage

logger = logging.getLogger(__name__)


class OversizedError(PayloadError):
    """A payload larger than ``max_payload_bytes``."""

    reason = "oversized"


class Score(Message):
    """The daemon's ``PREFIX/scores/MACHINE`` payload (``pdm/daemon/publisher.py``)."""

    machine_id: Name
    ts: Epoch
    score: float
    threshold: float | None = None
    contributions: Shares = {}  # noqa: RUF012 (pydantic copies defaults)
    model: ModelRef | None = None
    instance: Name | None = None


def parse_score(payload: bytes, machine_id: str) -> Score:
    obj = decode_object(payload, "scores")
    if obj.get("schema", 1) != 1:
        raise SchemaVersionError(f"scores: found schema {short(obj.get('schema'))}, expected 1")
    if obj.get("machine_id", machine_id) != machine_id:
        raise MachineMismatchError(f"scores: machine_id: found {short(obj.get('machine_id'))}, expected "
                                   f"{machine_id!r} (the topic's MACHINE)")
    try:
        return Score.model_validate(obj)
    except ValidationError as exc:
        raise_validation(exc, "scores")


def _model(ref: ModelRef | None) -> dict[str, str | None]:
    return {"model_name": ref.name if ref else None, "model_version": ref.version if ref else None}


def _json(mapping: Mapping[str, float]) -> str:
    return json.dumps(dict(sorted(mapping.items())), separators=(",", ":"))


class Handler:
    """Validates messages and fills the table buffers; keeps each machine's last recorded state."""

    def __init__(self, topics: Topics, buffers: dict[str, RowBuffer | TelemetryBuffer], sensors: Sequence[str],
                 max_payload_bytes: int, counters: Counters, *, max_clock_skew: float = 0.0) -> None:
        self.topics, self.buffers, self.sensors = topics, buffers, tuple(sensors)
        self.max_payload_bytes, self.counters = max_payload_bytes, counters
        self.max_clock_skew = max_clock_skew
        self._last_state: dict[str, tuple[Any, ...]] = {}
        self._log = RateLimitedLog(logger, every_s=10.0)

    def handle(self, item: RecorderMessage) -> None:
        """Record one message, or count and record its rejection; never raises."""
        kind, machine = "?", None
        try:
            if len(item.payload) > self.max_payload_bytes:
                raise OversizedError(f"payload: found {len(item.payload)} bytes, expected at most "
                                     f"{self.max_payload_bytes} (--max-payload-bytes)")
            info = self.topics.parse(item.topic)
            kind, machine = info.kind, info.machine_id
            self.counters.inc(f"messages.{kind}")
            if machine is not None:
                self._machine_message(kind, machine, item)
            elif kind == "status":
                s = parse_status(item.payload, info.service, info.instance)
                self._row("status", service=s.service, instance=s.instance, state=s.state, version=s.version,
                          started_at=s.started_at, retained=item.retain, received_at=item.received_at,
                          **_model(s.model))
        except ContractError as exc:
            self._reject(item, kind, machine, exc.reason, str(exc))
        except Exception as exc:  # per message: a bug here must not stop the recorder
            self._log.exception("internal", "could not record a message on %s", item.topic)
            self._reject(item, kind, machine, "internal", f"{type(exc).__name__}: {exc}")

    def _telemetry(self, payload: bytes, machine: str, at: float) -> Telemetry:
        """Telemetry with every sensor recorded. The contract's sensors are required; the others (a reference such
        as ``ambient``, which only some machines' models read) are optional: a message without them is recorded with
        nulls, so one recorder serves a fleet whose machines send different extras."""
        skew = self.max_clock_skew or None
        try:
            return parse_telemetry(payload, machine, self.sensors, now=at, max_clock_skew_s=skew)
        except MissingFieldError:
            required = tuple(s for s in self.sensors if s in SENSORS)
            if required == self.sensors:
                raise
            t = parse_telemetry(payload, machine, required, now=at, max_clock_skew_s=skew)
            values = np.full((len(t), len(self.sensors)), np.nan)
            for j, name in enumerate(required):
                values[:, self.sensors.index(name)] = t.values[:, j]
            return dataclasses.replace(t, values=values, sensors=self.sensors)

    def _machine_message(self, kind: str, machine: str, item: RecorderMessage) -> None:
        at, payload = item.received_at, item.payload
        if kind == "telemetry":
            t = self._telemetry(payload, machine, at)
            self.counters.inc("extra_fields", t.extra_fields)
            buf = self.buffers.get("telemetry")
            if isinstance(buf, TelemetryBuffer):
                buf.add(t, at)
                self.counters.inc("rows.telemetry", len(t))
        elif kind == "scores":
            sc = parse_score(payload, machine)
            self._dated("scores", at, "ts", sc.ts)
            self._row("scores", machine_id=machine, ts=sc.ts, score=sc.score, threshold=sc.threshold,
                      contributions=_json(sc.contributions), instance=sc.instance, received_at=at, **_model(sc.model))
        elif kind == "alerts":
            a = parse_alert(payload, machine)
            self._dated("alert", at, "ts", a.ts)
            self._row("alerts", alert_id=a.alert_id, machine_id=machine, event=a.event, ts=a.ts,
                      window_start=a.window_start, window_end=a.window_end, score=a.score, threshold=a.threshold,
                      severity=a.severity, contributions=_json(a.contributions), instance=a.instance, received_at=at,
                      **_model(a.model))
        elif kind == "state":
            s = parse_state(payload, machine)
            self._dated("state", at, "ts", s.ts)
            self._dated("state", at, "since", s.since, past=False)
            key = (s.state, s.since, s.alert_id, s.instance)
            if self._last_state.get(machine) == key:
                self.counters.inc("states_unchanged")
                return
            self._last_state[machine] = key
            self._row("states", machine_id=machine, state=s.state, since=s.since, alert_id=s.alert_id, score=s.score,
                      threshold=s.threshold, instance=s.instance, ts=s.ts, retained=item.retain, received_at=at,
                      **_model(s.model))
        elif kind == "maintenance":
            m = parse_maintenance(payload, machine)
            if m is None:
                self._row("maintenance", machine_id=machine, cleared=True, retained=item.retain, received_at=at)
            else:
                self._dated("maintenance", at, "from", m.from_, past=False, future=False)
                self._dated("maintenance", at, "until", m.until, past=False, future=False)
                self._row("maintenance", machine_id=machine, from_ts=m.from_, until_ts=m.until, reason=m.reason,
                          by=m.by, cleared=False, retained=item.retain, received_at=at)
        elif kind == "truth":
            e = parse_truth(payload, machine)
            self._dated("truth", at, "ts", e.ts)
            self._row("truth", machine_id=machine, ts=e.ts, event=e.event, fault=e.fault, kind=e.kind,
                      sensor=e.sensor, fault_id=e.fault_id, received_at=at)

    def _dated(self, what: str, at: float, field: str, value: float, *, past: bool = True,
               future: bool = True) -> None:
        """``value`` from 2000 to before 2100 and, with the clock-skew rule, not further than ``max_clock_skew``
        behind (``past``) or ahead of (``future``) the receive time ``at``."""
        ts = np.array([value])
        check_times(ts, what, field)
        if self.max_clock_skew and ((past and value < at) or (future and value > at)):
            check_clock_skew(ts, what, at, self.max_clock_skew, field)

    def _row(self, table: str, **row: Any) -> None:
        buf = self.buffers.get(table)
        if isinstance(buf, RowBuffer):
            buf.add(row)
            self.counters.inc(f"rows.{table}")

    def _reject(self, item: RecorderMessage, kind: str, machine: str | None, reason: str, detail: str) -> None:
        self.counters.inc(f"rejected.{reason}")
        topic = item.topic[:MAX_TOPIC]
        self._log.warning(f"rejected:{reason}", "rejected a message on %s: %s: %s", topic[:200], reason,
                          detail[:1000])
        excerpt = Rejected.build(topic, reason, "", item.payload, ts=item.received_at).payload_excerpt
        self._row("rejected", received_at=item.received_at, topic=topic, kind=kind,
                  machine_id=machine, reason=reason, detail=detail[:1000], payload_excerpt=excerpt)
