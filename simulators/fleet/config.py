"""Simulation settings and the parsing of their command-line forms (durations, fleet mix, forced faults).

>>> parse_duration("1d12h"), parse_duration("90m"), parse_duration("500ms"), parse_duration("30")
(129600.0, 5400.0, 0.5, 30.0)
>>> fleet_ids(fleet_types(5))
(['pump-001', 'compressor-001', 'pump-002', 'motor-001', 'pump-003'], ['pump', 'compressor', 'pump', 'motor', 'pump'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pdm.contract import AMBIENT, timespec
from simulators.fleet.faults import FAULT_TYPES, SENSORS, ForcedFault
from simulators.fleet.machines import TYPES

START_TS = 1_795_392_000.0  # 2026-11-23T00:00:00Z: the default offline start, so files are reproducible
TYPE_CYCLE = ("pump", "compressor", "pump", "motor")  # the default mix: half pumps, a quarter of each other


class ConfigError(ValueError):
    """A setting is invalid; the message says what was found and what was expected."""


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``6h``, ``7d``, ``1w``, ``1d12h``, ``500ms`` (`pdm.contract.timespec`)."""
    try:
        return timespec.parse_duration(text, what)
    except ValueError as exc:  # pdm.errors.DataError
        raise ConfigError(str(exc)) from None


def fleet_types(n: int) -> list[str]:
    """``n`` machines of the default mix (pump, compressor, pump, motor, ...)."""
    if n < 1:
        raise ConfigError(f"--machines: found {n}, expected at least 1")
    return [TYPE_CYCLE[i % len(TYPE_CYCLE)] for i in range(n)]


def parse_mix(text: str) -> list[str]:
    """``pump=10,compressor=5,motor=5`` -> types, interleaved so every prefix of the fleet is mixed."""
    counts: dict[str, int] = {}
    for item in text.split(","):
        name, _, num = item.strip().partition("=")
        if name not in TYPES or not num.isdigit():
            raise ConfigError(f"--mix: found {item.strip()!r}, expected TYPE=COUNT with TYPE one of {list(TYPES)}")
        counts[name] = counts.get(name, 0) + int(num)
    total = sum(counts.values())
    if total < 1:
        raise ConfigError(f"--mix: found {text!r} with no machines, expected at least one")
    # interleave: machine i of type t sits at fraction (i + 0.5) / count_t of the fleet
    order = sorted(((i + 0.5) / c, TYPES.index(t), t) for t, c in counts.items() for i in range(c))
    return [t for _, _, t in order]


def fleet_ids(types: list[str]) -> tuple[list[str], list[str]]:
    """Machine ids ``TYPE-NNN`` numbered per type (at least 3 digits)."""
    width = {t: max(3, len(str(types.count(t)))) for t in set(types)}
    seen: dict[str, int] = {}
    ids = []
    for t in types:
        seen[t] = seen.get(t, 0) + 1
        ids.append(f"{t}-{seen[t]:0{width[t]}d}")
    return ids, list(types)


def parse_fault(text: str) -> ForcedFault:
    """``machine=pump-001,type=bearing_wear,start=2d,duration=20h[,severity=0.8][,sensor=temperature]``."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in ("machine", "type", "start", "duration", "severity", "sensor"):
            raise ConfigError(f"--fault: found {item.strip()!r}, expected KEY=VALUE with KEY one of machine, type, "
                              "start, duration, severity, sensor")
        fields[key] = value
    for key in ("machine", "type", "start"):
        if key not in fields:
            raise ConfigError(f"--fault {text!r}: found no {key}=..., expected machine=, type= and start=")
    ftype = fields["type"]
    if ftype not in FAULT_TYPES:
        raise ConfigError(f"--fault: type: found {ftype!r}, expected one of {sorted(FAULT_TYPES)}")
    sensor = fields.get("sensor")
    if FAULT_TYPES[ftype].kind == "sensor":
        sensor = sensor or "temperature"
        if sensor not in SENSORS:
            raise ConfigError(f"--fault: sensor: found {sensor!r}, expected one of {list(SENSORS)}")
    elif sensor is not None:
        raise ConfigError(f"--fault: sensor: found {sensor!r} for machine fault {ftype!r}, expected no sensor "
                          "(sensor= is for the sensor faults stuck, dropout, spike, drift)")
    try:
        severity = float(fields.get("severity", "0.8"))
    except ValueError:
        severity = -1.0
    if not 0 < severity <= 1:
        raise ConfigError(f"--fault: severity: found {fields.get('severity')!r}, expected a number in (0, 1]")
    duration = parse_duration(fields["duration"], "--fault duration") if "duration" in fields else None
    if duration is not None and duration <= 0:
        raise ConfigError(f"--fault: duration: found {fields['duration']!r}, expected a duration > 0")
    return ForcedFault(fields["machine"], ftype, parse_duration(fields["start"], "--fault start"), duration,
                       severity, sensor)


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the simulated data (same config and seed: same data, byte for byte)."""

    types: list[str]
    seed: int = 0
    noise_seed: int | None = None  # operation, noise and faults; None: ``seed`` (same machines, other days if set)
    interval_s: float = 1.0
    duration_s: float | None = 86400.0  # None: run until stopped (live mode)
    start_ts: float = START_TS
    fault_rate_per_day: float = 0.2  # random faults per machine per day
    normal_only: bool = False
    forced: list[ForcedFault] = field(default_factory=list)
    ambient_sensor: bool = False  # also report each machine's ambient temperature (`pdm.contract.AMBIENT`)

    @property
    def sensors(self) -> tuple[str, ...]:
        """The sensor values every reading carries."""
        return (*SENSORS, AMBIENT) if self.ambient_sensor else SENSORS

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ConfigError(f"--interval: found {self.interval_s} s, expected a positive duration")
        if self.duration_s is not None and self.duration_s < self.interval_s:
            raise ConfigError(f"--duration: found {self.duration_s:g} s, expected at least one --interval "
                              f"({self.interval_s:g} s)")
        if self.fault_rate_per_day < 0:
            raise ConfigError(f"--fault-rate: found {self.fault_rate_per_day}, expected >= 0 faults per machine-day")
        if self.normal_only and self.forced:
            raise ConfigError("--normal-only: found --fault as well, expected one or the other (use --fault-rate 0 "
                              "with --fault for only the forced faults)")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed: found {self.seed}, expected an integer >= 0")
        if self.noise_seed is not None and not 0 <= self.noise_seed < 2**63:
            raise ConfigError(f"--noise-seed: found {self.noise_seed}, expected an integer >= 0")
        ids = set(self.machine_ids)
        for f in self.forced:
            if f.machine_id not in ids:
                raise ConfigError(f"--fault: machine: found {f.machine_id!r}, expected one of the fleet's ids "
                                  f"({self.machine_ids[0]}, ... {self.machine_ids[-1]})")
            if self.duration_s is not None and f.start_s >= self.duration_s:
                raise ConfigError(f"--fault: start: found {f.start_s:g} s, expected before the end of the "
                                  f"simulation ({self.duration_s:g} s)")

    @cached_property
    def machine_ids(self) -> list[str]:
        return fleet_ids(self.types)[0]

    @property
    def run_seed(self) -> int:
        """The seed of everything but the machines' parameters: operation, noise and faults."""
        return self.seed if self.noise_seed is None else self.noise_seed

    @property
    def total_steps(self) -> int | None:
        return None if self.duration_s is None else int(self.duration_s // self.interval_s)
