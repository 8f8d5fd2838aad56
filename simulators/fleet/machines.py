"""Machine types and their dynamics, vectorised across the fleet (arrays are (steps, machines)).

Per machine and block of steps:

1. Duty cycle: a run/stop process (exponential on and off times) and load-level changes while running (pumps on a
   variable-speed drive change speed; compressors cycle between unloaded and loaded; motors change load). These
   regime changes are normal behaviour.
2. Mechanics: speed ramps at start and stop (first-order lag); load follows its target (a pump's load is speed**3).
3. Signals: temperature = ambient (daily cycle + shared slow weather) + heat through a thermal time constant;
   vibration follows speed and load with slow natural fluctuation; pressure follows the operating point (pump head
   ~ speed**2, compressor loaded/unloaded band, motor lube-oil pressure ~ speed, lower when hot).
4. Sensor noise; quantisation happens after sensor faults (in the engine).

Every unit draws its own parameters (no two machines identical). Time constants are quantised to a quarter-octave
grid so that each lag filter runs once per distinct constant (``scipy.signal.lfilter`` along time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

logger = logging.getLogger(__name__)

TYPES = ("pump", "compressor", "motor")
DAY_S = 86_400.0


@dataclass(frozen=True)
class TypeSpec:
    """Nominal behaviour of one machine type; ranges are (low, high) for unit-to-unit variation."""

    mean_on_s: float
    mean_off_s: float
    mean_level_s: float
    levels: tuple[float, ...]  # discrete load levels, or (low, high) when ``continuous``
    continuous: bool
    tau_speed_s: tuple[float, float]
    tau_load_s: tuple[float, float]
    tau_thermal_s: tuple[float, float]
    tau_pressure_s: tuple[float, float]
    rise_c: tuple[float, float]  # temperature rise over ambient at full heat
    heat_speed: float  # heat share that follows speed (friction); the rest follows load
    heat_load_exp: float
    vib_gain: tuple[float, float]  # mm/s at full speed
    vib_speed_exp: float
    vib_load: float
    p_off: tuple[float, float]  # bar when stopped
    p_run: tuple[float, float]  # bar added when running (x speed)
    p_speed2: tuple[float, float]  # bar x speed**2 (pump head)
    p_load: float
    p_temp: float  # bar per degC above 60 (x speed): oil thins when hot


SPECS: dict[str, TypeSpec] = {
    # centrifugal pump on a variable-speed drive: discharge pressure ~ static head + speed**2, bearing temperature
    "pump": TypeSpec(3 * 3600, 40 * 60, 25 * 60, (0.6, 1.0), True, (6, 12), (5, 10), (900, 1500), (1.5, 3),
                     (22, 32), 0.3, 1.0, (1.5, 2.3), 2.0, 0.25, (0.8, 1.5), (0, 0), (2.8, 3.8), 0.0, 0.0),
    # fixed-speed screw compressor cycling between unloaded and loaded; discharge temperature and receiver pressure
    "compressor": TypeSpec(2 * 3600, 30 * 60, 6 * 60, (0.15, 0.55, 0.8, 1.0), False, (4, 8), (5, 15), (240, 480),
                           (40, 90), (50, 65), 0.35, 1.0, (2.2, 3.2), 1.0, 0.9, (0.3, 0.3), (5.6, 6.2), (0, 0),
                           1.5, 0.0),
    # induction motor driving a variable load: winding temperature ~ load**2, lube-oil pressure ~ speed
    "motor": TypeSpec(6 * 3600, 60 * 60, 30 * 60, (0.25, 1.0), True, (2, 5), (10, 30), (1500, 2400), (3, 6),
                      (35, 50), 0.25, 2.0, (0.9, 1.4), 1.0, 0.35, (0.15, 0.15), (2.1, 2.7), (0, 0), 0.15, -0.012),
}


def quantise_tau(tau: np.ndarray) -> np.ndarray:
    """Round time constants to a quarter-octave grid (few distinct filters)."""
    return np.asarray(2.0 ** (np.round(np.log2(tau) * 4) / 4))


def lag(x: np.ndarray, tau_steps: np.ndarray, state: np.ndarray) -> np.ndarray:
    """First-order lag along axis 0 with a time constant per column; ``state`` (M,) is the previous output,
    updated in place (so consecutive blocks join exactly)."""
    a = np.exp(-1.0 / np.maximum(tau_steps, 1e-9))
    y = np.empty_like(x)
    for value in np.unique(a):
        cols = np.flatnonzero(a == value)
        yc, _ = lfilter([1 - value], [1, -value], x[:, cols], axis=0, zi=(value * state[cols])[None, :])
        y[:, cols] = yc
        state[cols] = yc[-1]
    return y


def forward_fill(initial: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                 n_rows: int) -> np.ndarray:
    """(n_rows, M) array holding ``initial`` until each column's events (row, col, value) change it."""
    m = len(initial)
    arr = np.empty((n_rows, m))
    has = np.zeros((n_rows, m), dtype=bool)
    arr[0] = initial
    has[0] = True
    arr[rows, cols] = values
    has[rows, cols] = True
    idx = np.where(has, np.arange(n_rows)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(arr, idx, axis=0)


def _pow12(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``x ** exponent`` for per-column exponents of 1 or 2 (cheaper than a general power)."""
    return np.where(exponent == 2.0, x * x, x)


class Fleet:
    """Per-machine parameters and the carried state of the dynamics."""

    def __init__(self, types: list[str], interval_s: float, start_ts: float, rng: np.random.Generator) -> None:
        self.types = np.array(types)
        self.interval = interval_s
        self.start_ts = start_ts
        m = len(types)
        self.m = m
        self.is_pump = self.types == "pump"

        def per_type(field: str) -> np.ndarray:
            lo = np.array([getattr(SPECS[t], field)[0] for t in types], dtype=float)
            hi = np.array([getattr(SPECS[t], field)[1] for t in types], dtype=float)
            return lo + (hi - lo) * rng.random(m)

        def scalar(field: str) -> np.ndarray:
            return np.array([getattr(SPECS[t], field) for t in types], dtype=float)

        def steps(field: str) -> np.ndarray:
            return quantise_tau(per_type(field)) / interval_s

        vary = np.exp(rng.normal(0, 0.3, (3, m)))
        self.mean_on = scalar("mean_on_s") * vary[0] / interval_s
        self.mean_off = scalar("mean_off_s") * vary[1] / interval_s
        self.mean_level = scalar("mean_level_s") * vary[2] / interval_s
        self.tau_speed, self.tau_load = steps("tau_speed_s"), steps("tau_load_s")
        self.tau_thermal, self.tau_pressure = steps("tau_thermal_s"), steps("tau_pressure_s")
        self.rise = per_type("rise_c")
        self.heat_speed, self.heat_load_exp = scalar("heat_speed"), scalar("heat_load_exp")
        self.vib_gain, self.vib_speed_exp, self.vib_load = per_type("vib_gain"), scalar("vib_speed_exp"), \
            scalar("vib_load") * rng.uniform(0.8, 1.2, m)
        self.vib_bg = rng.uniform(0.06, 0.14, m)
        self.p_off, self.p_run, self.p_speed2 = per_type("p_off"), per_type("p_run"), per_type("p_speed2")
        self.p_load, self.p_temp = scalar("p_load"), scalar("p_temp")
        self.ambient_base = rng.uniform(14, 26, m)
        self.ambient_amp = rng.uniform(2.5, 6.0, m)
        self.ambient_peak_h = rng.uniform(13.5, 16.0, m)
        self.noise_t = rng.uniform(0.05, 0.12, m)
        self.noise_v = rng.uniform(0.015, 0.03, m)
        self.noise_p = rng.uniform(0.008, 0.02, m)
        # state: running, load level, next events (absolute steps), filter outputs
        p_on = self.mean_on / (self.mean_on + self.mean_off)
        self.running = rng.random(m) < p_on
        self.level = self._draw_levels(np.arange(m), rng)
        self.next_run = rng.exponential(np.where(self.running, self.mean_on, self.mean_off))
        self.next_level = rng.exponential(self.mean_level)
        speed0 = self.running * np.where(self.is_pump, self.level, 1.0)
        load0 = np.where(self.is_pump, speed0**3, self.running * self.level)
        self.s_speed, self.s_load = speed0.copy(), load0.copy()
        self.s_heat = self.rise * (self.heat_speed * speed0 + (1 - self.heat_speed) * _pow12(load0, self.heat_load_exp))
        self.s_press = self._pressure_target(speed0, load0, self.ambient_base + self.s_heat)
        self.s_vibfluct = np.zeros(m)
        self.s_weather = np.zeros(1)

    def _draw_levels(self, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(len(cols))
        for t in TYPES:
            sel = self.types[cols] == t
            if not sel.any():
                continue
            spec = SPECS[t]
            n = int(sel.sum())
            out[sel] = rng.uniform(*spec.levels, n) if spec.continuous else rng.choice(spec.levels, n)
        return out

    def _pressure_target(self, speed: np.ndarray, load: np.ndarray, temp: np.ndarray) -> np.ndarray:
        return np.asarray(self.p_off + self.p_run * speed + self.p_speed2 * speed * speed + self.p_load * load
                          + self.p_temp * (temp - 60.0) * speed)

    def regimes(self, b0: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Run state (0/1) and load level for steps [b0, b0+n): the duty cycle, as events per machine."""
        b1 = b0 + n
        run_ev: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        run0 = self.running.astype(float)
        while (idx := np.flatnonzero(self.next_run < b1)).size:
            at = np.maximum(self.next_run[idx].astype(np.int64), b0)
            self.running[idx] = ~self.running[idx]
            run_ev.append((at - b0, idx, self.running[idx].astype(float)))
            mean = np.where(self.running[idx], self.mean_on[idx], self.mean_off[idx])
            self.next_run[idx] = np.floor(self.next_run[idx]) + 1 + rng.exponential(mean)
        lvl_ev: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        level0 = self.level.copy()
        while (idx := np.flatnonzero(self.next_level < b1)).size:
            at = np.maximum(self.next_level[idx].astype(np.int64), b0)
            self.level[idx] = self._draw_levels(idx, rng)
            lvl_ev.append((at - b0, idx, self.level[idx].copy()))
            self.next_level[idx] = np.floor(self.next_level[idx]) + 1 + rng.exponential(self.mean_level[idx])

        def fill(initial: np.ndarray, events: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
            if not events:
                return np.broadcast_to(initial, (n, self.m)).copy()
            rows, cols, vals = (np.concatenate(e) for e in zip(*events, strict=True))
            return forward_fill(initial, rows, cols, vals, n)

        return fill(run0, run_ev), fill(level0, lvl_ev)

    def mechanics(self, run: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Speed (0..1, ramps at start/stop) and load (0..1)."""
        speed = lag(run * np.where(self.is_pump, level, 1.0), self.tau_speed, self.s_speed)
        load = lag(run * level, self.tau_load, self.s_load)
        return speed, np.where(self.is_pump, speed * speed * speed, load)

    def ambient(self, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Ambient temperature: per-site base, daily cycle, and slow weather shared by the plant."""
        hours = (ts % DAY_S) / 3600.0
        daily = self.ambient_amp * np.cos(2 * np.pi * (hours[:, None] - self.ambient_peak_h) / 24.0)
        tau = 6 * 3600 / self.interval
        a = np.exp(-1 / tau)
        white = rng.normal(0.0, 1.5 * np.sqrt((1 + a) / (1 - a)), (len(ts), 1))
        weather = lag(white, np.array([tau]), self.s_weather)
        return np.asarray(self.ambient_base + daily + weather)

    def signals(self, speed: np.ndarray, load: np.ndarray, ambient: np.ndarray, effects: Effects,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noisy temperature, vibration and pressure before sensor faults and quantisation."""
        heat = self.rise * (self.heat_speed * speed + (1 - self.heat_speed) * _pow12(load, self.heat_load_exp))
        temp = ambient + lag(heat + effects.heat, self.tau_thermal, self.s_heat)
        tau_fl = np.full(self.m, 30.0 / self.interval)
        a = np.exp(-1 / tau_fl[0])
        noise = rng.standard_normal((4, *speed.shape))
        noise[0] *= 0.06 * np.sqrt((1 + a) / (1 - a))
        fluct = lag(noise[0], tau_fl, self.s_vibfluct)
        vib = self.vib_bg + self.vib_gain * _pow12(speed, self.vib_speed_exp) + self.vib_load * load
        vib = vib * np.exp(fluct) * (1 + effects.vib_mult) + effects.vib_add
        target = self._pressure_target(speed, load, temp) * (1 + effects.press_mult)
        press = lag(target, self.tau_pressure, self.s_press) + effects.press_add
        temp += noise[1] * self.noise_t
        vib = np.maximum(vib + noise[2] * self.noise_v, 0.0)
        press = np.maximum(press + noise[3] * self.noise_p, 0.0)
        return temp, vib, press


@dataclass
class Effects:
    """What machine faults add to a block: heat (degC before the thermal lag), vibration (x(1+mult) + add),
    pressure (target x(1+mult), + add after the lag)."""

    heat: np.ndarray
    vib_mult: np.ndarray
    vib_add: np.ndarray
    press_mult: np.ndarray
    press_add: np.ndarray

    @classmethod
    def zeros(cls, shape: tuple[int, int]) -> Effects:
        return cls(*(np.zeros(shape) for _ in range(5)))
