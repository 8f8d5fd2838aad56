"""Checkpoints of every machine in ``--state-dir``, so a daemon killed at any instant resumes where it stopped:
every telemetry reading scored once, every alert published at least once with its id (docs/daemon.md,
"Exactly once across a kill").

**What a machine's record holds**: its model, ``machine_type`` and last ``seq``; the newest ``window - 1`` applied
readings (at least one), raw, as little-endian float64 (exact, NaN kept); its alarm look-back
(`pdm.daemon.episodes.LookBack`) and whether the alarm is active; the open alert (id, window, since, peak and its
contributions); the open sensor alerts (``kind: sensor``: id, reading time raised at, problem), held open after
the restore for `pdm.daemon.quality.hold_s` and then cleared once their problem is gone (a drift alert: once the
sensor reads its rest level again, `MachineState.restore_sensors`); the drift-at-rest evidence of its checked
sensors (`pdm.detectors.rest.RestWatch.evidence`, with the bounds it was gathered against: after a restore the
votes go on where they stopped, unless the model's rest levels changed); the last score, the windows scored, and
the time its state began. Restoring replays the readings into a fresh stream of the model (`Detector.stream`),
which rebuilds the ring buffer and the newest reading time exactly (a window ready during the replay was scored
before the kill and is dropped), then rebuilds the alarm tracker from the look-back. Not kept: the drift and
data-quality span (as after any restart), the drift watch's settling run (its next vote comes after 10 minutes of
readings at rest), the stride's phase (``--stride`` > 1 counts from the first window after the restore), and the
fill value of a sensor that is null at the start of the kept readings (the training median instead of its older
last value).

**Files**: ``journal.jsonl``, one line per commit, appended and fsynced: ``{"c": n, "m": {machine: record},
"gone": [machines evicted], "alerts": [[topic, payload], ...]}``, and ``{"d": n}`` once commit ``n``'s alerts
were acknowledged by the broker (not fsynced: losing one only republishes those alerts). ``snapshot.json``:
``{"c": n, "m": {every machine}, "alerts": {"n": [...]}}`` (alerts not yet delivered), written to a temporary
file, fsynced and renamed over the old one; the journal is then emptied. A journal line that does not parse ends
the journal (a write torn by the kill); a snapshot that does not parse is renamed ``snapshot.json.corrupt`` and
logged (the daemon then starts without it: the retained states restore open alerts, as without ``--state-dir``).

**The order** (`pdm.daemon.scoring.Scorer.commit`): apply and score a micro-batch; append its commit (the machines
it changed and the alerts it raised or cleared); publish the alerts, states and scores; then acknowledge its
messages. A kill before the append: nothing was published, the broker redelivers the messages, and they are
scored as if for the first time. A kill after it: the redelivered readings are at or before each machine's newest
reading and are dropped as duplicates (never scored twice), and the commit's alerts are published again at start
unless their delivery was recorded, so consumers may see an identical copy (deduplicate on ``alert_id`` and
``event``).

Size: under 400 lines: the file format, its signing and the exactly-once rules belong together.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from pdm.contract import alert_id
from pdm.contract.errors import FieldValueError
from pdm.contract.limits import plausible_time
from pdm.daemon.episodes import LookBack, OpenAlert
from pdm.daemon.machines import MachineState
from pdm.daemon.models import ModelSlot
from pdm.daemon.quality import PROBLEMS

logger = logging.getLogger(__name__)
JOURNAL = "journal.jsonl"
SNAPSHOT = "snapshot.json"
COMPACT_MIN_BYTES = 16 * 1024**2
Record = dict[str, Any]


def pack(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def unpack(text: object, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise FieldValueError(f"checkpoint: {what}: found {type(text).__name__}, expected base64 float64")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 8:
        raise FieldValueError(f"checkpoint: {what}: found {len(raw)} bytes, expected a multiple of 8")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


def alert_record(a: OpenAlert | None) -> Record | None:
    if a is None:
        return None
    return {"id": a.alert_id, "start": a.window_start, "end": a.window_end, "since": a.since, "peak": a.peak,
            "contrib": a.contributions}


def open_alert(rec: object, machine_id: str) -> OpenAlert | None:
    """The open alert of a record; the id and times are checked like a retained state's (`OpenAlert.untrusted`)."""
    if rec is None:
        return None
    if not isinstance(rec, dict):
        raise FieldValueError("checkpoint: alert: expected an object")
    a = OpenAlert.untrusted(machine_id, str(rec["id"]), float(rec["since"]), float(rec["peak"]),
                           float(rec["end"]) - float(rec["start"]))
    contrib = rec.get("contrib") or {}
    if not isinstance(contrib, dict) or not all(isinstance(v, float | int) for v in contrib.values()):
        raise FieldValueError("checkpoint: alert: contrib: expected {sensor: share}")
    a.contributions = {str(k): float(v) for k, v in contrib.items()}
    a.was_restored = False  # the whole episode is known: its cleared event carries the peak's contributions
    return a


def open_sensor_alerts(rec: object, machine_id: str, features: tuple[str, ...]) -> dict[str, tuple[str, float, str]]:
    """The open sensor alerts of a record (absent in records written before they were kept): each names one of
    the model's sensors, a known problem, a plausible time, and the id that machine, sensor and time give."""
    if rec is None:
        return {}
    if not isinstance(rec, dict):
        raise FieldValueError("checkpoint: sensors: expected {sensor: [alert_id, raised_at, problem]}")
    out = {}
    for sensor, item in rec.items():
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[1], float | int) and item[2] in PROBLEMS):
            raise FieldValueError(f"checkpoint: sensors: {sensor}: found {str(item)[:80]}, expected "
                                  f"[alert_id, raised_at, one of {list(PROBLEMS)}]")
        aid, raised_at, problem = item
        if sensor not in features or not plausible_time(float(raised_at)) or \
                aid != alert_id(machine_id, float(raised_at), sensor):
            raise FieldValueError(f"checkpoint: sensors: {sensor}: found alert_id {aid[:80]!r} raised at {raised_at},"
                                  f" expected one of the model's sensors, from 2000 to before 2100, and its id")
        out[sensor] = (aid, float(raised_at), problem)
    return out


def look_back(rec: Record, n: int) -> LookBack:
    look = LookBack(n)
    recent, under = rec.get("recent", ""), rec.get("under", 0)
    if not isinstance(recent, str) or set(recent) - {"0", "1"} or not isinstance(under, int) or under < 0:
        raise FieldValueError("checkpoint: look-back: expected a string of 0/1 and a count >= 0")
    look.recent.extend(c == "1" for c in recent)
    look.under = under
    return look


def machine_record(m: MachineState) -> Record:
    """The checkpoint record of a machine (the module says what it holds); the machine keeps a tail."""
    tail_ts, tail_values = m.tail if m.tail is not None else (np.empty(0), np.empty((0, len(m.slot.features))))
    look = m.look if m.look is not None else LookBack(1)
    return {"model": m.slot.name, "type": m.machine_type, "seq": m.last_seq, "f": list(m.slot.features),
            "ts": pack(tail_ts), "v": pack(tail_values), "active": m.tracker.active,
            "recent": "".join("1" if over else "0" for over in look.recent), "under": look.under,
            "alert": alert_record(m.open_alert), "sensors": {k: list(v) for k, v in m.open_sensors.items()},
            "rest": rest_record(m), "score": m.last_score, "scored": m.scored, "since": m.state_since}


def rest_record(m: MachineState) -> Record | None:
    """The drift-at-rest evidence of a machine whose sensors are checked: the bounds its votes were cast against
    and, per checked sensor, ``[average of +1s, average of -1s, readings judged, drifting]``."""
    watch = m.quality.rest
    if watch is None or not watch.checked:
        return None
    features = m.slot.features
    return {"b": watch.bounds(), "e": {features[j]: list(e) for j, e in watch.evidence().items()}}


def resume_rest(m: MachineState, rec: object) -> None:
    """Carry the machine's drift watch on from a record's evidence (absent in records written before it was
    kept); evidence cast against other bounds (another model version's rest levels) is not carried over."""
    watch = m.quality.rest
    if rec is None or watch is None:
        return
    if not (isinstance(rec, dict) and isinstance(rec.get("e"), dict)):
        raise FieldValueError("checkpoint: rest: expected {b: bounds, e: {sensor: [up, down, seen, drifting]}}")
    if rec.get("b") != watch.bounds():
        logger.info("%s: the drift evidence in the checkpoint was gathered against other rest levels (another model "
                    "version): the drift watch starts afresh", m.machine_id)
        return
    evidence = {}
    for sensor, item in rec["e"].items():
        if not (sensor in m.slot.features and isinstance(item, list) and len(item) == 4
                and all(isinstance(v, float | int) and not isinstance(v, bool) for v in item[:3])
                and isinstance(item[2], int) and isinstance(item[3], bool)):
            raise FieldValueError(f"checkpoint: rest: {str(sensor)[:40]}: found {str(item)[:80]}, expected one of the "
                                  "model's sensors and [up, down, seen, drifting]")
        evidence[m.slot.features.index(sensor)] = (float(item[0]), float(item[1]), item[2], item[3])
    try:
        watch.resume(evidence)
    except ValueError as exc:
        raise FieldValueError(f"checkpoint: rest: {exc}") from exc


def restore_machine(machine_id: str, rec: Record, slot: ModelSlot, drift_window: float, stride: int,
                    ) -> MachineState:
    """A machine as its record left it, scored by ``slot`` (its model's loaded version); `FieldValueError` (or
    `KeyError`, `TypeError`, `ValueError`) when the record does not fit."""
    mtype = rec.get("type")
    m = MachineState.create(machine_id, slot, mtype if isinstance(mtype, str) else None, drift_window, stride,
                            keep_tail=True)
    saved = rec["f"]
    missing = [f for f in slot.features if f not in saved]
    if missing:
        raise FieldValueError(f"checkpoint: features: found {saved}, expected every one of {list(slot.features)}")
    ts = unpack(rec["ts"], "ts")
    values = unpack(rec["v"], "v").reshape(len(ts), len(saved))[:, [saved.index(f) for f in slot.features]]
    if not (np.isfinite(ts).all() and (np.diff(ts) > 0).all() and all(map(plausible_time, ts))):
        raise FieldValueError("checkpoint: ts: expected increasing times from 2000 to before 2100")
    if len(ts):
        m.stream.append(ts, values)  # rebuilds the ring; a window ready here was scored before the kill
        m.tail = (ts, values)
    seq = rec.get("seq")
    m.last_seq = seq if isinstance(seq, int) and seq >= 0 else None
    tracker = slot.detector.new_alarm_tracker(m.stream.stride)
    m.look = look_back(rec, tracker.rule.n)
    tracker.active = bool(rec["active"])
    m.tracker = m.look.rebuild(tracker)
    m.open_alert = open_alert(rec.get("alert"), machine_id)
    m.restore_sensors(open_sensor_alerts(rec.get("sensors"), machine_id, slot.features))
    resume_rest(m, rec.get("rest"))  # after the restored drift alerts: the evidence decides how they go on
    score = rec.get("score")
    m.last_score = float(score) if isinstance(score, float | int) and math.isfinite(score) else None
    m.scored = int(rec.get("scored", 0))
    m.state_since = float(rec.get("since", 0.0))
    return m


@dataclass
class Loaded:
    """What a state directory held: each machine's newest record, the alerts not known to be delivered (by
    commit), and the newest commit number."""

    records: dict[str, Record] = field(default_factory=dict)
    undelivered: dict[int, list[tuple[str, bytes]]] = field(default_factory=dict)
    commit: int = 0


def read(directory: Path) -> Loaded:
    """The machines' newest records and the undelivered alerts of a state directory (read only: the daemon's own
    start, tools and tests use it; the module says how a torn journal and a corrupt snapshot are handled)."""
    out = Loaded()
    snapshot_commit = 0
    path = directory / SNAPSHOT
    if path.exists():
        try:
            snap = json.loads(path.read_bytes())
            out.commit = int(snap["c"])
            out.records = dict(snap["m"])
            out.undelivered = {int(c): [(str(t), str(p).encode()) for t, p in alerts]
                               for c, alerts in dict(snap.get("alerts", {})).items()}
            snapshot_commit = out.commit
        except (ValueError, KeyError, TypeError) as exc:
            bad = path.with_name(SNAPSHOT + ".corrupt")
            path.replace(bad)
            logger.error("checkpoint %s does not parse (%s): moved to %s; starting without it", path, exc, bad)
            out = Loaded()
    delivered: set[int] = set()
    journal = directory / JOURNAL
    lines = journal.read_bytes().splitlines() if journal.exists() else []
    for n, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            if "d" in entry:
                delivered.add(int(entry["d"]))
                continue
            c = int(entry["c"])
            if c <= snapshot_commit:
                continue  # already in the snapshot
            records, gone = dict(entry.get("m", {})), [str(g) for g in entry.get("gone", [])]
            alerts = [(str(t), str(p).encode()) for t, p in entry.get("alerts", [])]
        except (ValueError, KeyError, TypeError):
            logger.warning("checkpoint journal line %d of %d does not parse (a write cut by a kill): it and what "
                           "follows are ignored", n, len(lines))
            break
        out.records.update(records)
        for machine_id in gone:
            out.records.pop(machine_id, None)
        if alerts:
            out.undelivered[c] = alerts
        out.commit = max(out.commit, c)
    out.undelivered = {c: a for c, a in sorted(out.undelivered.items()) if c not in delivered}
    return out


def _delivered(infos: list[mqtt.MQTTMessageInfo]) -> bool | None:
    """All acknowledged (True), some still on their way (False), or one that paho cannot report on (None: it was
    published without a connection, or not queued)."""
    try:
        return all(i.is_published() for i in infos)
    except (RuntimeError, ValueError):
        return None


class Checkpoint:
    """The state directory: `load` once at start, `write` a commit per micro-batch, `compact` now and then."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.commit_no = 0
        self.snapshot_bytes = 0
        self._journal = (directory / JOURNAL).open("ab")
        self._unconfirmed: list[tuple[int, list[mqtt.MQTTMessageInfo]]] = []
        self.undelivered: dict[int, list[tuple[str, bytes]]] = {}

    # ------------------------------------------------------------------ reading
    def load(self) -> Loaded:
        """What the directory holds (`read`); the next commit follows its newest."""
        out = read(self.dir)
        self.commit_no = out.commit
        self.undelivered = dict(out.undelivered)
        return out

    # ------------------------------------------------------------------ writing
    def write(self, records: dict[str, Record], gone: Iterable[str], alerts: list[tuple[str, bytes]]) -> int:
        """Append one commit and fsync it; returns its number."""
        self.commit_no += 1
        c = self.commit_no
        entry = {"c": c, "m": records, "gone": list(gone), "alerts": [[t, p.decode()] for t, p in alerts]}
        self._journal.write(json.dumps(entry, separators=(",", ":"), allow_nan=False).encode() + b"\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        if alerts:
            self.undelivered[c] = list(alerts)
        return c

    def sent(self, commit: int, infos: list[mqtt.MQTTMessageInfo]) -> None:
        """The publications of ``commit``'s alerts; `confirm` records their delivery once the broker has them."""
        if commit in self.undelivered:
            self._unconfirmed.append((commit, infos))

    def confirm(self) -> None:
        """Record the commits whose alerts the broker has acknowledged (``{"d": n}``, not fsynced). A publication
        made while the connection was down cannot say when it is delivered: its commit stays undelivered and is
        published again at the next start (a possible copy, never a loss)."""
        keep: list[tuple[int, list[mqtt.MQTTMessageInfo]]] = []
        done: list[tuple[int, list[mqtt.MQTTMessageInfo]]] = []
        for c, infos in self._unconfirmed:
            state = _delivered(infos)
            if state is None:
                continue  # given up: stays in undelivered
            (done if state else keep).append((c, infos))
        self._unconfirmed = keep
        for c, _ in done:
            self.undelivered.pop(c, None)
            self._journal.write(json.dumps({"d": c}).encode() + b"\n")
        if done:
            self._journal.flush()

    def journal_bytes(self) -> int:
        return self._journal.tell()

    def due(self) -> bool:
        """The journal has grown past four snapshots (at least 16 MiB): time to `compact`."""
        return self.journal_bytes() > max(COMPACT_MIN_BYTES, 4 * self.snapshot_bytes)

    def compact(self, records: Iterable[tuple[str, Record]]) -> None:
        """Write every machine's record (and the alerts not yet delivered) as the snapshot, then empty the journal.
        The records are written one at a time (a generator keeps the memory flat for a large fleet)."""
        t0 = time.perf_counter()
        alerts = {str(c): [[t, p.decode()] for t, p in a] for c, a in self.undelivered.items()}
        tmp = self.dir / (SNAPSHOT + ".tmp")
        n = 0
        with tmp.open("wb") as f:
            f.write(b'{"c":%d,"alerts":%s,"m":{' % (self.commit_no, json.dumps(alerts).encode()))
            for machine_id, rec in records:
                f.write(b"," if n else b"")
                f.write(json.dumps(machine_id).encode() + b":" + json.dumps(rec, separators=(",", ":"),
                                                                           allow_nan=False).encode())
                n += 1
            f.write(b"}}")
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        tmp.replace(self.dir / SNAPSHOT)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._journal.close()
        self._journal = (self.dir / JOURNAL).open("wb")
        self.snapshot_bytes = size
        logger.info("checkpoint compacted: %d machines, %.1f MB, %.2f s", n, size / 1e6, time.perf_counter() - t0)

    def close(self) -> None:
        self._journal.close()
