"""``python -m pdm retrain``: train a challenger on recent normal data, promote it only when it is not worse.

Exit codes (for schedulers): 0 the challenger was promoted (or was the first version), 3 the champion was kept
(the challenger is saved, not current), 4 another retrain of this model holds its lock, 2 any other error
(one ``error:`` line), 130 interrupted. With ``--every`` the command loops and exits 0 when stopped by SIGTERM or
SIGINT; each run's outcome is logged.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pdm.commands.train import HYPER
from pdm.errors import DataError, PdmError

logger = logging.getLogger("pdm.retrain")
EXIT_PROMOTED, EXIT_ERROR, EXIT_KEPT, EXIT_LOCKED = 0, 2, 3, 4
DEFAULT_LAST_S = 7 * 86_400.0

EPILOG = """exit codes: 0 promoted (or first version), 3 champion kept (challenger saved, not current),
4 another retrain of this model is running, 2 error, 130 interrupted. With --every: 0 when stopped by a signal.
examples:
  python -m pdm retrain --model models/pump --data history.parquet --keep 10
  python -m pdm retrain --model models/pump --recorder /var/lib/pdm/recorded --last 7d --machine-type pump
  python -m pdm retrain --model models/pump --recorder /var/lib/pdm/recorded --last 7d --every 24h
docs: docs/retraining.md"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "retrain", help="retrain a model on recent normal data; promote it only when it is not worse",
        description="Train a challenger on recent data believed normal (alert, stale, warming-up and maintenance "
        "periods, labelled faults and, for unlabelled files, the champion's own alarms excluded, with margins), "
        "calibrate it on "
        "the most recent training readings, judge it against the current model (the champion) on the same held-out "
        "readings and labelled faults, save it as a new version with a report, and make it current only when it is "
        "not worse by --tolerance (or with --force).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, required=True, metavar="MODELS_DIR/NAME", help="model name directory")
    src = p.add_argument_group("input (one of)")
    src.add_argument("--data", type=Path, action="append", metavar="PATH",
                     help="CSV or Parquet file as `pdm train` reads them; repeatable")
    src.add_argument("--recorder", type=Path, metavar="ROOT", help="the recorder's root directory")
    sel = p.add_argument_group("selection")
    sel.add_argument("--machine", action="append", metavar="ID", help="only this machine; repeatable")
    sel.add_argument("--machine-type", metavar="TYPE", help="only machines of this type")
    sel.add_argument("--since", metavar="TIME", help="from this time (ISO 8601 or epoch s)")
    sel.add_argument("--until", metavar="TIME", help="up to this time, excluded (default: now / the data's end)")
    sel.add_argument("--last", metavar="DURATION", help="the last DURATION (e.g. 7d) before --until (recorder "
                     "default without --since: 7d)")
    files = p.add_argument_group("files")
    files.add_argument("--timestamp-column", help="timestamp column (default: the champion's, else detected)")
    files.add_argument("--machine-column", default="machine_id", help="machine id column")
    files.add_argument("--machine-id", help="machine id of a single file without a machine column")
    files.add_argument("--label-column", default="auto",
                       help="fault labels to exclude and judge on: 'auto' (fault_type, label or fault if present) or "
                       "'none' (default: auto)")
    files.add_argument("--kind-column", help="'machine'/'sensor' per faulty row (default: fault_kind if present)")
    pol = p.add_argument_group("policy")
    pol.add_argument("--init", choices=["scratch", "finetune"], default="scratch",
                     help="train from random weights or from the champion's (default: scratch, chosen by measurement:"
                     " docs/retraining.md)")
    pol.add_argument("--holdout", default="0.2", help="recent part of each machine's span held out to judge both "
                     "models: a fraction or a duration (default: 0.2)")
    pol.add_argument("--margin-before", default="2h", help="excluded before each alert (default: 2h)")
    pol.add_argument("--margin-after", default="1h", help="excluded after each alert and labelled fault (default: 1h)")
    pol.add_argument("--screen", action=argparse.BooleanOptionalAction, default=None,
                     help="exclude the champion's own alarms (default: for files without labels, which have no alert "
                     "history)")
    pol.add_argument("--tolerance", type=float, default=0.1,
                     help="how much worse (relative) the challenger may be and still be promoted (default: 0.1)")
    pol.add_argument("--force", action="store_true", help="promote whatever the comparison says")
    pol.add_argument("--keep", type=int, metavar="N", help="keep the N newest versions (and the current one)")
    pol.add_argument("--max-eval-rows", type=int, default=500_000,
                     help="judge on at most this many held-out readings (default: 500000)")
    pol.add_argument("--grace", type=float, help="seconds after a fault's end in which alarms count (default: 2 "
                     "windows)")
    pol.add_argument("--every", metavar="DURATION", help="run again every DURATION (e.g. 24h) until stopped")
    g = p.add_argument_group("hyper-parameters (default: the champion's, else the detector's defaults)")
    for name, kind, text in HYPER:
        flag = "--" + name.replace("_", "-")
        if isinstance(kind, list):
            g.add_argument(flag, choices=kind, help=text)
        elif kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            g.add_argument(flag, type=kind, help=text)
    p.set_defaults(run=run, needs_tensorflow=True)  # trains a Keras model


def options_from(args: argparse.Namespace) -> Any:
    from pdm.contract.timespec import parse_duration, parse_holdout
    from pdm.retrain.run import RetrainOptions

    overrides = {name: getattr(args, name) for name, _, _ in HYPER}
    stride = overrides["stride"]
    if stride is not None and stride != "auto":
        if not str(stride).isdigit() or int(stride) < 1:
            raise DataError(f"found --stride {stride!r}, expected 'auto' or a whole number >= 1")
        overrides["stride"] = int(stride)
    if not 0 <= args.tolerance < 1:
        raise DataError(f"found --tolerance {args.tolerance}, expected 0 <= tolerance < 1")
    if args.keep is not None and args.keep < 1:
        raise DataError(f"found --keep {args.keep}, expected at least 1")
    if args.max_eval_rows < 1000:
        raise DataError(f"found --max-eval-rows {args.max_eval_rows}, expected at least 1000")
    fraction, seconds = parse_holdout(args.holdout)
    return RetrainOptions(init=args.init, overrides=overrides, holdout_fraction=fraction, holdout_s=seconds,
                          margin_before_s=parse_duration(args.margin_before, "--margin-before"),
                          margin_after_s=parse_duration(args.margin_after, "--margin-after"),
                          tolerance=args.tolerance, force=args.force, keep=args.keep, screen=args.screen,
                          max_eval_rows=args.max_eval_rows, grace_s=args.grace)


def load(args: argparse.Namespace) -> Any:
    """The input as a `RetrainData`, selected by machine, type and time."""
    from pdm.contract.timespec import parse_duration, parse_time
    from pdm.retrain.data import from_files

    if (args.data is None) == (args.recorder is None):
        raise DataError("input: found " + ("both --data and --recorder" if args.data else "neither --data nor "
                        "--recorder") + ", expected one of them")
    until = parse_time(args.until, "--until") if args.until else None
    since = parse_time(args.since, "--since") if args.since else None
    last = parse_duration(args.last, "--last") if args.last else None
    if args.recorder is not None:
        from pdm.retrain.recorder_source import from_recorder

        end = until if until is not None else time.time()
        if last is None and since is None:
            last = DEFAULT_LAST_S
        start = end - last if last is not None else since
        return from_recorder(args.recorder, start=start, end=end, machines=args.machine,
                             machine_type=args.machine_type)
    label = None if str(args.label_column).lower() == "none" else args.label_column
    data = from_files(args.data, timestamp_column=args.timestamp_column or _champion_ts(args.model),
                      machine_column=args.machine_column, machine_id=args.machine_id, label_column=label,
                      kind_column=args.kind_column)
    if last is not None:
        end = until if until is not None else float(data.frame["timestamp"].max()) + 1e-6
        since = end - last
    return data.select(args.machine, args.machine_type, since, until)


def _champion_ts(model: Path) -> str | None:
    """The champion's timestamp column, read from its config (no model load)."""
    import json

    from pdm.saving import current_version

    version = current_version(model)
    if version is None:
        return None
    try:
        params = json.loads((model / version / "config.json").read_text(encoding="utf-8")).get("params", {})
    except (OSError, ValueError):
        return None
    value = params.get("timestamp_column")
    return value if isinstance(value, str) else None


def once(args: argparse.Namespace, interactive: bool) -> int:
    from pdm.retrain.progress import make_progress
    from pdm.retrain.run import retrain

    options = options_from(args)
    data = load(args)
    progress = make_progress(interactive)
    try:
        outcome = retrain(data, args.model, options, progress)
    finally:
        progress.close()
    _print(outcome)
    return EXIT_PROMOTED if outcome.promoted else EXIT_KEPT


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _print(o: Any) -> None:
    r = o.report
    d = r["data"]
    span = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") for t in d["span"]]
    screened = "; screened with the champion" if d["screened_with_champion"] else ""
    print(f"data      {d['rows']} readings from {d['machines']} machine(s), {span[0]} to {span[1]} UTC; "
          f"{d['labelled_faults']} labelled fault(s){screened}")
    for i, line in enumerate(o.exclusions.lines()):
        print(f"{'excluded' if i == 0 else '':10s}{line}")
    for w in o.exclusions.warnings:
        print(f"warning   {w}")
    s, fit = d["split"], r["challenger"]["fit"]
    print(f"split     {s['train_rows']} training readings, {s['holdout_rows']} held out, {s['fault_slices']} "
          "fault slice(s)")
    print(f"training  {r['challenger']['init']}: {fit.get('train_windows')} windows (stride {fit.get('stride')}), "
          f"{fit.get('epochs_run')} epochs; threshold {r['challenger']['threshold']:.5g}")
    rows = [("challenger", r["challenger"]["figures"])]
    if r["champion"] is not None and r["champion"]["figures"] is not None:
        rows.insert(0, (f"champion {r['champion']['version']}", r["champion"]["figures"]))
    for name, f in rows:
        faults = f.get("faults") or {}
        judged = ""
        if faults.get("faults"):
            judged += f", faults {faults['detected']}/{faults['faults']}"
            if faults.get("median_delay_s") is not None:
                judged += f", median delay {faults['median_delay_s']:.0f} s"
        if faults.get("sensor_faults"):
            judged += f", sensor faults {faults['sensor_detected']}/{faults['sensor_faults']}"
        print(f"judged    {name}: raise rate {_fmt(f['raise_rate'])} on {f['windows']} held-out windows, "
              f"{_fmt((f.get('normal') or {}).get('false_alarms_per_machine_day'), '.2f')} false alarms/machine-day"
              + judged)
    verdict = "PROMOTED" if o.promoted else "CHAMPION KEPT"
    print(f"decision  {verdict}: " + "; ".join(o.decision.reasons))
    print(f"saved     {o.version_dir} ({'now current' if o.promoted else 'not current'}); report.json, report.png")
    if o.removed:
        print(f"pruned    {', '.join(o.removed)}")


def run(args: argparse.Namespace) -> int:
    from pdm.contract.timespec import parse_duration
    from pdm.retrain.lock import LockedError

    interactive = sys.stderr.isatty()
    if args.every is None:
        try:
            return once(args, interactive)
        except LockedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCKED
    every = parse_duration(args.every, "--every")
    if every < 60:
        raise DataError(f"found --every {args.every}, expected at least 1m")
    options_from(args)  # bad options fail now, not at the first run
    return loop(args, every, interactive)


def loop(args: argparse.Namespace, every: float, interactive: bool) -> int:
    """Run every ``every`` seconds (from the start of one run to the next) until SIGTERM/SIGINT."""
    from pdm.retrain.lock import LockedError

    stop = threading.Event()
    running = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if running.is_set():
            raise KeyboardInterrupt  # abort the run in progress: versions are written atomically

    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            started = time.monotonic()
            running.set()
            try:
                code = once(args, interactive)
                logger.info("retrain finished: exit code %d (%s)", code, "promoted" if code == 0 else "champion kept")
            except LockedError as exc:
                logger.warning("retrain skipped: %s", exc)
            except (PdmError, OSError) as exc:
                logger.error("retrain failed: %s", exc)
            except KeyboardInterrupt:
                logger.warning("retrain interrupted")
            finally:
                running.clear()
            wait = max(0.0, every - (time.monotonic() - started))
            if not stop.is_set():
                logger.info("next retrain in %.0f s", wait)
            stop.wait(wait)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    logger.info("stopped")
    return 0
