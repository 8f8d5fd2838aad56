"""Command line: ``python -m simulators.fleet --help`` and ``python -m simulators.fleet plot --help``."""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pdm.contract import ContractError
from simulators.fleet.config import (
    START_TS,
    ConfigError,
    SimConfig,
    fleet_types,
    parse_duration,
    parse_fault,
    parse_mix,
)
from simulators.fleet.faults import FAULT_TYPES

logger = logging.getLogger(__name__)

EPILOG = f"""fault types: {", ".join(FAULT_TYPES)}
examples:
  python -m simulators.fleet --machines 20 --duration 7d --seed 1 --out fleet.parquet
  python -m simulators.fleet --machines 1 --normal-only --duration 2d --out train.csv
  python -m simulators.fleet --machines 4 --fault-rate 0 --duration 1d --out demo.parquet \\
      --fault machine=pump-001,type=bearing_wear,start=6h,duration=12h
  python -m simulators.fleet --machines 100 --broker mqtt://127.0.0.1:1883 --speed 60
  python -m simulators.fleet plot fleet.parquet --machine pump-001 --out pump-001.png
"""


def positive(kind: type[float] | type[int]):  # type: ignore[no-untyped-def]
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"found {text!r}, expected a number") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"found {text!r}, expected a positive number")
        return value
    return convert


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    value: float = positive(float)(text)
    return value


def parse_start(text: str) -> float:
    if re.fullmatch(r"\d+(\.\d*)?", text.strip()):
        return float(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()  # no zone given: UTC
    except ValueError:
        raise ConfigError(f"--start: found {text!r}, expected epoch seconds or ISO 8601 like "
                          "2026-11-23T00:00:00Z") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.fleet", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Fleet simulator: pumps, compressors and motors with labelled machine "
                                "and sensor faults, offline to a file (--out) or live over MQTT (--broker). "
                                "`python -m simulators.fleet plot --help` draws one machine.")
    fleet = p.add_argument_group("fleet and time")
    size = fleet.add_mutually_exclusive_group()
    size.add_argument("--machines", type=positive(int), default=10, help="fleet size, mixed types (default 10)")
    size.add_argument("--mix", help="counts per type, e.g. pump=50,compressor=30,motor=20")
    fleet.add_argument("--duration", help="simulated span, e.g. 6h, 7d (default: 1d offline, until stopped live)")
    fleet.add_argument("--interval", default="1s", help="sampling interval (default 1s)")
    fleet.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fleet.add_argument("--ambient-sensor", action="store_true",
                       help="also report each machine's ambient air temperature as 'ambient' (degC), a reference "
                            "for its temperature (python -m pdm train --reference temperature=ambient)")
    fleet.add_argument("--noise-seed", type=int, default=None,
                       help="seed of the machines' operation, noise and faults (default: --seed); the same --seed "
                       "with another --noise-seed simulates the same machines on other days")
    fleet.add_argument("--start", help=f"simulated start, epoch s or ISO 8601 (default {START_TS:.0f} = "
                       "2026-11-23T00:00:00Z offline, now live)")
    faults = p.add_argument_group("faults")
    faults.add_argument("--fault-rate", type=float, default=0.2, help="random faults per machine-day (default 0.2)")
    faults.add_argument("--normal-only", action="store_true", help="no faults at all (training data)")
    faults.add_argument("--fault", action="append", default=[], metavar="SPEC", help="force a fault: machine=ID,"
                        "type=TYPE,start=OFFSET[,duration=D][,severity=0-1][,sensor=NAME]; repeatable")
    mode = p.add_argument_group("mode (one of)")
    target = mode.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write readings to PATH.parquet or PATH.csv (+ PATH_faults.*)")
    target.add_argument("--broker", help="publish live to mqtt://HOST:PORT (mqtts:// for TLS)")
    live = p.add_argument_group("live options")
    live.add_argument("--speed", type=parse_speed, default=1.0, help="real-time multiplier or 'max' (default 1)")
    live.add_argument("--qos", type=int, choices=(0, 1), default=1, help="telemetry QoS (default 1)")
    live.add_argument("--single", action="store_true", help="one message per reading instead of batches")
    live.add_argument("--tick", type=positive(float), default=1.0,
                      help="wall-clock seconds per batch (default 1; one batch per machine per tick)")
    live.add_argument("--max-batch", type=positive(int), default=60, help="readings per batch at --speed max")
    live.add_argument("--prefix", default="pdm/v1", help="topic prefix (default pdm/v1)")
    live.add_argument("--instance", default="simulator-0", help="status instance name (default simulator-0)")
    live.add_argument("--mqtt-version", type=int, choices=(5, 3), default=5, help="5 (default) or 3 (3.1.1)")
    live.add_argument("--username", help="broker user name; the password is read from $PDM_MQTT_PASSWORD")
    live.add_argument("--ca-file", help="CA certificate for TLS (default: the system's)")
    live.add_argument("--report-every", type=positive(float), default=5.0,
                      help="seconds between checks of the lag behind --speed (default 5)")
    p.add_argument("--quiet", action="store_true", help="warnings only")
    return p


def plot_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.fleet plot",
                                description="Draw one machine's signals with its faults shaded (PNG).")
    p.add_argument("data", type=Path, help="a readings file written with --out (its _faults file beside it)")
    p.add_argument("--machine", required=True, help="machine id, e.g. pump-001")
    p.add_argument("--from", dest="start", default="0s", help="offset from the data's start (default 0s)")
    p.add_argument("--to", dest="end", help="offset from the data's start (default: the end)")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    return p


def run_plot(argv: list[str]) -> int:
    from simulators.fleet import offline
    from simulators.fleet.plot import plot_machine

    args = plot_parser().parse_args(argv)
    if args.out.suffix.lower() != ".png":
        raise ConfigError(f"--out: found {str(args.out)!r}, expected a .png file")
    readings, faults = offline.read(args.data)
    t0 = float(readings["timestamp"].iloc[0])
    end = None if args.end is None else t0 + parse_duration(args.end, "--to")
    out = plot_machine(readings, faults, args.machine, args.out, start=t0 + parse_duration(args.start, "--from"),
                       end=end)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    live = args.broker is not None
    interval = parse_duration(args.interval, "--interval")
    duration = parse_duration(args.duration, "--duration") if args.duration else (None if live else 86400.0)
    if args.start is not None:
        start = parse_start(args.start)
    else:
        start = math.floor(time.time() / interval) * interval if live else START_TS
    types = parse_mix(args.mix) if args.mix else fleet_types(args.machines)
    config = SimConfig(types=types, seed=args.seed, noise_seed=args.noise_seed, interval_s=interval,
                       duration_s=duration, start_ts=start,
                       fault_rate_per_day=args.fault_rate, normal_only=args.normal_only,
                       forced=[parse_fault(f) for f in args.fault], ambient_sensor=args.ambient_sensor)
    from simulators.fleet.engine import Simulator

    sim = Simulator(config)
    if not live:
        from simulators.fleet import offline

        s = offline.write(sim, args.out)
        print(f"wrote {s.rows:,} readings of {s.machines} machines with {s.faults} faults to {s.path} and "
              f"{s.faults_path.name} in {s.seconds:.1f} s ({s.rows / max(s.seconds, 1e-9):,.0f} readings/s)")
        return 0
    from simulators.fleet.live import LiveOptions, Publisher

    opts = LiveOptions(broker=args.broker, prefix=args.prefix, qos=args.qos, single=args.single, speed=args.speed,
                       tick_s=args.tick, max_batch=args.max_batch, instance=args.instance, username=args.username,
                       ca_file=args.ca_file, mqtt_version=5 if args.mqtt_version == 5 else 4,
                       report_every_s=args.report_every)
    pub = Publisher(sim, opts)
    started = time.monotonic()
    c = pub.run()
    elapsed = time.monotonic() - started
    unacked = c.sent - c.acked
    print(f"published {c.telemetry:,} telemetry messages ({c.readings:,} readings), {c.truth} truth events and "
          f"{c.sent - c.telemetry - c.truth} status messages to {args.broker} in {elapsed:.1f} s "
          f"({c.readings / max(elapsed, 1e-9):,.0f} readings/s); unacknowledged: {unacked}; "
          f"disconnects: {c.disconnects}; QoS 0 dropped while disconnected: {c.dropped_qos0}; "
          f"max lag behind --speed: {c.max_lag_s:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["plot"]:
            return run_plot(argv[1:])
        return run(argv)
    except (ContractError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
