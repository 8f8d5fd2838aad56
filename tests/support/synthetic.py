"""A compact generator of plausible machine telemetry with injected faults, for tests, benchmarks and the demo.

Not white noise: a duty cycle of load regimes (idle, part load, full load) with ramps; temperature follows load
through a thermal time constant plus a daily ambient cycle; vibration follows speed and load; pressure follows the
operating point quickly; sensor noise and quantisation; unit-to-unit variation from the machine's seed. Regime
changes are normal behaviour, so a detector that flags every load change fails.

(`simulators.fleet` is the full fleet simulator; this module stays small and dependency-light.)

>>> df, faults = machine_frame(n=600, seed=1)
>>> list(df.columns), len(df), faults
(['timestamp', 'temperature', 'vibration', 'pressure', 'label'], 600, [])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

FAULT_KINDS = ("vibration_step", "temperature_drift", "leak", "bearing_wear", "oscillation")
START_TS = 1_795_392_000.0  # 2026-11-23T00:00:00Z


@dataclass(frozen=True)
class Fault:
    """An injected fault over rows [start, end); ``severity`` scales its size (1 = clear)."""

    kind: str
    start: int
    end: int
    severity: float = 1.0
    sensor: str = ""  # the sensor it shows up on first


def _lag(x: np.ndarray, tau_steps: float, x0: float) -> np.ndarray:
    """First-order lag with time constant ``tau_steps`` (in samples)."""
    a = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    y, _ = lfilter([1 - a], [1, -a], x, zi=[a * x0])
    return np.asarray(y)


def _load_profile(n: int, rng: np.random.Generator, mean_regime_s: float, period_s: float) -> np.ndarray:
    levels = np.array([0.0, 0.45, 0.7, 1.0])
    out = np.empty(n)
    i = 0
    while i < n:
        length = max(int(rng.exponential(mean_regime_s / period_s)), int(30 / period_s))
        out[i : i + length] = rng.choice(levels, p=[0.15, 0.25, 0.35, 0.25])
        i += length
    return _lag(out, 15.0 / period_s, out[0])  # start/stop ramps


def machine_frame(
    n: int,
    *,
    seed: int,
    unit_seed: int | None = None,
    period_s: float = 1.0,
    start_ts: float = START_TS,
    faults: list[Fault] | None = None,
    mean_regime_s: float = 180.0,
) -> tuple[pd.DataFrame, list[Fault]]:
    """One machine's readings: ``timestamp`` (epoch s), ``temperature`` (degC), ``vibration`` (mm/s),
    ``pressure`` (bar), and ``label`` (1 inside an injected fault). ``unit_seed`` fixes the unit's individual
    baseline (defaults to ``seed``), so fresh data from the same machine uses a new ``seed`` and the same
    ``unit_seed``."""
    rng = np.random.default_rng(seed)
    unit = np.random.default_rng(seed if unit_seed is None else unit_seed)
    t = start_ts + np.arange(n) * period_s
    temp_base = 55.0 + unit.normal(0, 3.0)
    temp_gain = 18.0 * unit.uniform(0.85, 1.15)
    vib_base = 0.8 * unit.uniform(0.8, 1.2)
    vib_gain = 2.2 * unit.uniform(0.85, 1.15)
    p_base = 1.0 * unit.uniform(0.9, 1.1)
    p_gain = 3.2 * unit.uniform(0.9, 1.1)

    load = _load_profile(n, rng, mean_regime_s, period_s)
    ambient = 20.0 + 4.0 * np.sin(2 * np.pi * ((t % 86400) / 86400 - 0.35))
    temperature = ambient + temp_base - 20.0 + _lag(temp_gain * load, 240.0 / period_s, temp_gain * load[0])
    speed = _lag((load > 0.05).astype(float), 5.0 / period_s, float(load[0] > 0.05))
    vibration = vib_base * speed + vib_gain * load**1.5 + 0.12 * np.abs(rng.normal(size=n)) * speed
    pressure = p_base + p_gain * _lag(load, 3.0 / period_s, load[0])
    label = np.zeros(n, dtype=np.int8)

    for f in faults or []:
        rows = slice(f.start, f.end)
        ramp = np.linspace(0.0, 1.0, max(f.end - f.start, 1))
        if f.kind == "vibration_step":
            vibration[rows] += 1.5 * f.severity
        elif f.kind == "temperature_drift":
            temperature[rows] += 12.0 * f.severity * ramp
        elif f.kind == "leak":  # pressure no longer follows load: operating point lost
            pressure[rows] -= 0.45 * f.severity * p_gain * load[rows]
        elif f.kind == "bearing_wear":
            vibration[rows] += 1.8 * f.severity * ramp**2 * speed[rows]
            temperature[rows] += 4.0 * f.severity * ramp
        elif f.kind == "oscillation":  # a control loop hunting: pressure swings around its operating point
            pressure[rows] += 0.4 * f.severity * np.sin(2 * np.pi * np.arange(f.end - f.start) / 6.0)
        else:
            raise ValueError(f"found fault kind {f.kind!r}, expected one of {FAULT_KINDS}")
        label[rows] = 1

    frame = pd.DataFrame({
        "timestamp": t,
        "temperature": np.round(temperature + rng.normal(0, 0.15, n), 1),
        "vibration": np.round(np.maximum(vibration + rng.normal(0, 0.04, n), 0.0), 2),
        "pressure": np.round(pressure + rng.normal(0, 0.03, n), 2),
        "label": label,
    })
    return frame, list(faults or [])


FAULT_SENSOR = {"vibration_step": "vibration", "temperature_drift": "temperature", "leak": "pressure",
                "bearing_wear": "vibration"}


def fleet(
    machines: int, n: int, *, seed: int, fault_kinds: tuple[str, ...] = (), fault_len: int = 600,
    unit_seed_offset: int = 0, period_s: float = 1.0, mean_regime_s: float = 180.0,
) -> dict[str, tuple[pd.DataFrame, list[Fault]]]:
    """``machines`` units named ``pump-000``...; the first ``len(fault_kinds)`` each get one fault in their second
    half. The same ``unit_seed_offset`` gives the same units (baselines) with new noise for a new ``seed``."""
    out = {}
    rng = np.random.default_rng(seed + 10_000)
    for i in range(machines):
        faults = []
        if i < len(fault_kinds):
            start = int(rng.integers(n // 2, max(n - fault_len, n // 2 + 1)))
            kind = fault_kinds[i]
            faults = [Fault(kind, start, min(start + fault_len, n), sensor=FAULT_SENSOR[kind])]
        out[f"pump-{i:03d}"] = machine_frame(n, seed=seed * 1000 + i, unit_seed=unit_seed_offset + i,
                                             faults=faults, period_s=period_s,
                                             mean_regime_s=mean_regime_s)
    return out


def faulty(kind: str, n: int, start: int, end: int, *, severity: float = 1.0, seed: int = 21,
           unit: int = 0) -> pd.DataFrame:
    frame, _ = machine_frame(n, seed=seed, unit_seed=unit,
                                       faults=[Fault(kind, start, end, severity)], mean_regime_s=180.0)
    return frame.drop(columns="label")
