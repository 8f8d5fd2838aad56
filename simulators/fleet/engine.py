"""The simulation loop: blocks of steps for the whole fleet, identical however they are consumed.

Time is cut into fixed blocks (about a million readings each); block ``b`` draws its randomness from its own
streams, seeded by ``(seed, stream, b)``: the duty cycle and noise, the fault schedule and the fault effects each
have their own stream, so a run with a forced fault has exactly the same underlying machine behaviour as the same
run without it (the healthy baseline). Offline files and live publishing read the same blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pdm.contract import AMBIENT
from simulators.fleet.config import SimConfig
from simulators.fleet.faults import Fault, Scheduler, apply_sensor_faults, machine_effects
from simulators.fleet.machines import Effects, Fleet

logger = logging.getLogger(__name__)

READINGS_PER_BLOCK = 1_000_000
DECIMALS = {"temperature": 1, "vibration": 2, "pressure": 2, AMBIENT: 1}  # quantisation: 0.1 degC, 0.01 mm/s, 0.01 bar
AMBIENT_NOISE_C = 0.1  # the ambient sensor's noise (its own, standard deviation)
PARAMS, DYNAMICS, SCHEDULE, EFFECTS, FORCED = range(5)


def stream(seed: int, kind: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, index)))


@dataclass
class Block:
    """Steps [step0, step0 + len(ts)) of every machine: ``values[sensor]`` and ``labels`` are (steps, machines);
    a label is an index into ``Simulator.faults`` or -1 (normal); ``NaN`` is a dropout."""

    step0: int
    ts: np.ndarray
    values: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def rows(self, start: int, stop: int) -> Block:
        """Steps [start, stop) (absolute) of this block."""
        a, b = start - self.step0, stop - self.step0
        return Block(start, self.ts[a:b], {k: v[a:b] for k, v in self.values.items()}, self.labels[a:b])


class Simulator:
    """A fleet and its faults; iterate ``blocks()`` once, in order."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.machine_ids = config.machine_ids
        self.types = list(config.types)
        self.interval = config.interval_s
        self.fleet = Fleet(self.types, config.interval_s, config.start_ts, stream(config.seed, PARAMS))
        rate = 0.0 if config.normal_only else config.fault_rate_per_day
        try:
            self.scheduler = Scheduler(self.machine_ids, self.types, config.forced, rate_per_day=rate,
                                       interval_s=config.interval_s, rng=stream(config.run_seed, FORCED))
        except ValueError as exc:
            from simulators.fleet.config import ConfigError

            raise ConfigError(str(exc)) from None
        self.block_steps = int(np.clip(READINGS_PER_BLOCK // len(self.types), 60, 86_400))
        self.total_steps = config.total_steps

    @property
    def faults(self) -> list[Fault]:
        """Every fault scheduled so far (faults are created as the blocks that contain their start are made)."""
        return self.scheduler.faults

    @property
    def sensors(self) -> tuple[str, ...]:
        """The sensor values each reading carries (`SimConfig.sensors`)."""
        return self.config.sensors

    def ts(self, step: int | np.ndarray) -> np.ndarray:
        return np.asarray(self.config.start_ts + np.asarray(step, dtype=np.float64) * self.interval)

    def blocks(self) -> Iterator[Block]:
        b = 0
        while self.total_steps is None or b * self.block_steps < self.total_steps:
            b0 = b * self.block_steps
            n = self.block_steps if self.total_steps is None else min(self.block_steps, self.total_steps - b0)
            yield self._block(b, b0, n)
            b += 1

    def _block(self, b: int, b0: int, n: int) -> Block:
        seed = self.config.run_seed
        dyn, eff_rng = stream(seed, DYNAMICS, b), stream(seed, EFFECTS, b)
        ts = self.ts(np.arange(b0, b0 + n))
        faults = self.scheduler.active(b0, b0 + n, stream(seed, SCHEDULE, b))
        run, level = self.fleet.regimes(b0, n, dyn)
        speed, load = self.fleet.mechanics(run, level)
        ambient = self.fleet.ambient(ts, dyn)
        effects = machine_effects(faults, b0, speed, load, interval_s=self.interval, rng=eff_rng) if faults else \
            Effects.zeros(speed.shape)
        temp, vib, press = self.fleet.signals(speed, load, ambient, effects, dyn)
        values = {"temperature": temp, "vibration": vib, "pressure": press}
        labels = np.full((n, len(self.types)), -1, dtype=np.int32)
        if faults:
            apply_sensor_faults(faults, b0, values, eff_rng)
            for f in faults:
                labels[max(f.start, b0) - b0 : min(f.end, b0 + n) - b0, f.machine] = f.index
        if self.config.ambient_sensor:  # drawn last: the other values stay those of a run without it
            values[AMBIENT] = ambient + dyn.normal(0.0, AMBIENT_NOISE_C, ambient.shape)
        for name in self.config.sensors:
            arr = values[name]
            if name not in ("temperature", AMBIENT):  # temperatures may be below 0 degC
                np.maximum(arr, 0.0, out=arr)
            values[name] = np.round(arr, DECIMALS[name])
        return Block(b0, ts, values, labels)
