"""Fault types (ground truth), their scheduling, and their effect on the signals.

Machine faults change the physics (heat before the thermal lag, the pressure target, vibration); sensor faults
change only what one sensor reports. Faults of one machine never overlap (each row has at most one label).
A fault's id is ``MACHINE-N`` (N counts that machine's faults; forced faults are numbered first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pdm.contract import SENSORS
from simulators.fleet.machines import DAY_S, TYPES, Effects

logger = logging.getLogger(__name__)

H = 3600.0
Kind = Literal["machine", "sensor"]


@dataclass(frozen=True)
class ForcedFault:
    """A fault placed by hand: on ``machine_id``, ``start_s`` after the simulation start, for ``duration_s``."""

    machine_id: str
    type: str
    start_s: float
    duration_s: float | None = None  # None: the type's typical duration
    severity: float = 0.8
    sensor: str | None = None


@dataclass(frozen=True)
class FaultType:
    kind: Kind
    machine_types: tuple[str, ...]
    sensors: tuple[str, ...]  # sensors it shows on (machine faults) or can hit (sensor faults)
    duration_s: tuple[float, float]  # typical range (log-uniform)
    signature: str


FAULT_TYPES: dict[str, FaultType] = {
    "bearing_wear": FaultType("machine", TYPES, ("vibration", "temperature"), (6 * H, 48 * H),
                              "vibration rises over hours, slowly at first (~t^2.5, up to +4 mm/s at full speed); "
                              "temperature creeps up (up to +8 degC)"),
    "overheating": FaultType("machine", TYPES, ("temperature",), (1 * H, 8 * H),
                             "cooling failure: up to +22 degC of extra heat while running, reached over the first "
                             "30 % of the fault and seen through the thermal lag"),
    "leak": FaultType("machine", TYPES, ("pressure",), (2 * H, 24 * H),
                      "pressure up to 35 % below what the operating point gives (the load relationship breaks)"),
    "blockage": FaultType("machine", TYPES, ("pressure", "vibration", "temperature"), (1 * H, 12 * H),
                          "pressure builds up to 30 % above the operating point; slightly more vibration and heat"),
    "cavitation": FaultType("machine", ("pump",), ("vibration", "pressure"), (600, 3 * H),
                            "at high flow (speed > 0.75): vibration bursts and a 4-12 s pressure oscillation"),
    "imbalance": FaultType("machine", TYPES, ("vibration",), (4 * H, 48 * H),
                           "vibration steps up at onset by 1.5-3 mm/s x speed^2"),
    "misalignment": FaultType("machine", TYPES, ("vibration", "temperature"), (4 * H, 48 * H),
                              "vibration steps up at onset by 1-2 mm/s, more under load; slight temperature rise"),
    "stuck": FaultType("sensor", TYPES, SENSORS, (600, 6 * H), "the sensor repeats its value from the onset"),
    "dropout": FaultType("sensor", TYPES, SENSORS, (60, 2 * H), "the sensor reports null"),
    "spike": FaultType("sensor", TYPES, SENSORS, (600, 4 * H),
                       "isolated one-sample spikes on ~1 % of readings (temperature +/-10-30 degC, vibration "
                       "+3-10 mm/s, pressure +/-1-3 bar)"),
    "drift": FaultType("sensor", TYPES, SENSORS, (6 * H, 48 * H),
                       "a bias growing linearly from 0 (up to +/-8 degC, +1.5 mm/s or +/-0.8 bar)"),
}
MACHINE_FAULTS = tuple(k for k, v in FAULT_TYPES.items() if v.kind == "machine")
SENSOR_FAULTS = tuple(k for k, v in FAULT_TYPES.items() if v.kind == "sensor")
MACHINE_SHARE = 0.7  # of random faults; the rest are sensor faults
GAP_S = 3600.0  # at least this long between two faults of one machine
SPIKE_RATE = 0.01  # share of a spike fault's readings that spike
SPIKE = {"temperature": (10.0, 30.0), "vibration": (3.0, 10.0), "pressure": (1.0, 3.0)}
DRIFT = {"temperature": 8.0, "vibration": 1.5, "pressure": 0.8}


@dataclass
class Fault:
    index: int  # position in the fleet's fault list (the row label code)
    fault_id: str
    machine: int  # column in the fleet
    machine_id: str
    type: str
    kind: Kind
    sensor: str | None
    start: int  # first step
    end: int  # first step after the fault
    severity: float
    forced: bool
    params: dict[str, float] = field(default_factory=dict)
    stuck_value: float | None = None


def typical_duration(ftype: str) -> float:
    lo, hi = FAULT_TYPES[ftype].duration_s
    return float(np.sqrt(lo * hi))


def _params(ftype: str, sensor: str | None, rng: np.random.Generator) -> dict[str, float]:
    if ftype == "imbalance":
        return {"gain": rng.uniform(1.5, 3.0)}
    if ftype == "misalignment":
        return {"gain": rng.uniform(1.0, 2.0)}
    if ftype == "cavitation":
        return {"period_s": rng.uniform(4.0, 12.0)}
    if ftype == "drift":
        return {"sign": 1.0 if sensor == "vibration" else float(rng.choice([-1.0, 1.0]))}
    return {}


class Scheduler:
    """Random faults (a Poisson process per machine, ``rate_per_day``) around the forced ones."""

    def __init__(self, machine_ids: list[str], types: list[str], forced: list[ForcedFault], *, rate_per_day: float,
                 interval_s: float, rng: np.random.Generator) -> None:
        self.ids, self.types, self.interval = machine_ids, types, interval_s
        self.faults: list[Fault] = []
        self._open: list[Fault] = []  # not yet ended before the current block
        self._count = [0] * len(machine_ids)
        col = {m: i for i, m in enumerate(machine_ids)}
        self._forced: dict[int, list[Fault]] = {}
        for f in sorted(forced, key=lambda f: (col[f.machine_id], f.start_s)):
            c = col[f.machine_id]
            start = round(f.start_s / interval_s)
            steps = max(1, round((f.duration_s or typical_duration(f.type)) / interval_s))
            fault = self._new(c, f.type, f.sensor, (start, start + steps), severity=f.severity, forced=True, rng=rng)
            prev = self._forced.setdefault(c, [])
            if prev and prev[-1].end > start:
                raise ValueError(f"--fault: found overlapping faults {prev[-1].fault_id} and {fault.fault_id} on "
                                 f"{f.machine_id}, expected one fault at a time per machine")
            prev.append(fault)
        self.mean_gap = DAY_S / rate_per_day / interval_s if rate_per_day > 0 else np.inf
        self._next = rng.exponential(self.mean_gap, len(machine_ids)) if rate_per_day > 0 else \
            np.full(len(machine_ids), np.inf)

    def _new(self, c: int, ftype: str, sensor: str | None, span: tuple[int, int], *, severity: float, forced: bool,
             rng: np.random.Generator) -> Fault:
        self._count[c] += 1
        mid = self.ids[c]
        fault = Fault(len(self.faults), f"{mid}-{self._count[c]}", c, mid, ftype, FAULT_TYPES[ftype].kind, sensor,
                      span[0], span[1], severity, forced, _params(ftype, sensor, rng))
        self.faults.append(fault)
        self._open.append(fault)
        return fault

    def _random(self, c: int, start: int, rng: np.random.Generator) -> Fault:
        if rng.random() < MACHINE_SHARE:
            choices = [t for t in MACHINE_FAULTS if self.types[c] in FAULT_TYPES[t].machine_types]
            ftype, sensor = str(rng.choice(choices)), None
        else:
            ftype, sensor = str(rng.choice(SENSOR_FAULTS)), str(rng.choice(SENSORS))
        lo, hi = FAULT_TYPES[ftype].duration_s
        steps = max(1, round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) / self.interval))
        gap = round(GAP_S / self.interval)
        for f in self._forced.get(c, []):  # sorted by start: move past each forced fault it would touch
            if start < f.end + gap and f.start < start + steps + gap:
                start = f.end + gap
        return self._new(c, ftype, sensor, (start, start + steps), severity=float(rng.uniform(0.4, 1.0)),
                         forced=False, rng=rng)

    def active(self, b0: int, b1: int, rng: np.random.Generator) -> list[Fault]:
        """Faults that overlap steps [b0, b1), creating the random faults that start before b1."""
        while (due := np.flatnonzero(self._next < b1)).size:
            for c in due:
                fault = self._random(int(c), int(self._next[c]), rng)
                self._next[c] = fault.end + GAP_S / self.interval + rng.exponential(self.mean_gap)
        self._open = [f for f in self._open if f.end > b0]
        self._open.sort(key=lambda f: f.index)
        return [f for f in self._open if f.start < b1]


def machine_effects(faults: list[Fault], b0: int, speed: np.ndarray, load: np.ndarray, *, interval_s: float,
                    rng: np.random.Generator) -> Effects:
    """What the machine faults among ``faults`` add to the block that starts at step ``b0``."""
    eff = Effects.zeros(speed.shape)
    for f in faults:
        if f.kind != "machine":
            continue
        r0, r1, c = max(f.start, b0) - b0, min(f.end, b0 + len(speed)) - b0, f.machine
        u = (np.arange(r0, r1) + b0 - f.start) / (f.end - f.start)
        sp, ld, s = speed[r0:r1, c], load[r0:r1, c], f.severity
        rows = slice(r0, r1)
        if f.type == "bearing_wear":
            g = u**2.5
            eff.vib_add[rows, c] += s * 4.0 * g * sp
            eff.heat[rows, c] += s * 8.0 * g * sp
        elif f.type == "overheating":
            eff.heat[rows, c] += s * 22.0 * np.minimum(1.0, u / 0.3) * sp
        elif f.type == "leak":
            eff.press_mult[rows, c] -= s * 0.35 * np.minimum(1.0, u / 0.2)
        elif f.type == "blockage":
            g = u**1.5
            eff.press_mult[rows, c] += s * 0.3 * g
            eff.vib_mult[rows, c] += s * 0.25 * g * sp
            eff.heat[rows, c] += s * 3.0 * g * sp
        elif f.type == "cavitation":
            high = sp > 0.75
            burst = (rng.random(len(u)) < 0.03) * rng.exponential(2.5, len(u))
            burst = np.convolve(burst, np.ones(3))[: len(u)]  # a burst lasts about three samples
            t = (np.arange(r0, r1) + b0) * interval_s
            eff.vib_add[rows, c] += s * burst * sp * high
            eff.press_add[rows, c] += s * high * 0.3 * np.sin(2 * np.pi * t / f.params["period_s"])
            eff.press_mult[rows, c] -= s * 0.08 * high
        elif f.type == "imbalance":
            eff.vib_add[rows, c] += s * f.params["gain"] * sp**2
        elif f.type == "misalignment":
            eff.vib_add[rows, c] += s * f.params["gain"] * sp * (0.5 + 0.5 * ld)
            eff.heat[rows, c] += s * 4.0 * ld
    return eff


def apply_sensor_faults(faults: list[Fault], b0: int, values: dict[str, np.ndarray],
                        rng: np.random.Generator) -> None:
    """Change what the faulty sensors report, in place."""
    for f in faults:
        if f.kind != "sensor" or f.sensor is None:
            continue
        arr = values[f.sensor]
        r0, r1, c = max(f.start, b0) - b0, min(f.end, b0 + len(arr)) - b0, f.machine
        if f.type == "stuck":
            if f.stuck_value is None:
                f.stuck_value = float(arr[r0, c])
            arr[r0:r1, c] = f.stuck_value
        elif f.type == "dropout":
            arr[r0:r1, c] = np.nan
        elif f.type == "spike":
            hit = np.flatnonzero(rng.random(r1 - r0) < SPIKE_RATE) + r0
            sign = 1.0 if f.sensor == "vibration" else rng.choice([-1.0, 1.0], len(hit))
            arr[hit, c] += sign * rng.uniform(*SPIKE[f.sensor], len(hit))
        elif f.type == "drift":
            u = (np.arange(r0, r1) + b0 - f.start) / (f.end - f.start)
            arr[r0:r1, c] += f.severity * f.params["sign"] * DRIFT[f.sensor] * u
