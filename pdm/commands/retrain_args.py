"""The flags of ``python -m pdm retrain`` and what they become: the input a run reads (`pdm.retrain.source`) and
its `pdm.retrain.run.RetrainOptions`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pdm.commands.hyper import add_hyper_arguments, hyper_values
from pdm.contract.timespec import parse_duration, parse_holdout, parse_time
from pdm.errors import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    pol.add_argument("--trust-champion", action="store_true",
                     help="exclude a short-history champion's alarms and alerts too (by default they are not taken "
                     "as faults: such a model flags every condition its history did not show)")
    pol.add_argument("--tolerance", type=float, default=0.1,
                     help="how much worse (relative) the challenger may be and still be promoted (default: 0.1)")
    pol.add_argument("--force", action="store_true", help="promote whatever the comparison says")
    pol.add_argument("--keep", type=int, metavar="N", help="keep the N newest versions (and the current one)")
    pol.add_argument("--max-eval-rows", type=int, default=500_000,
                     help="judge on at most this many held-out readings (default: 500000)")
    pol.add_argument("--grace", type=float, help="seconds after a fault's end in which alarms count (default: 2 "
                     "windows)")
    pol.add_argument("--every", metavar="DURATION", help="run again every DURATION (e.g. 24h) until stopped")
    add_hyper_arguments(p, "hyper-parameters (default: the champion's, else the detector's defaults)", defaults=False)


def options_from(args: argparse.Namespace) -> Any:
    """The run's `RetrainOptions`; a bad value is a `DataError` naming its flag."""
    from pdm.retrain.run import RetrainOptions

    overrides = hyper_values(args)
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
                          trust_champion=args.trust_champion,
                          max_eval_rows=args.max_eval_rows, grace_s=args.grace)


def read_input(args: argparse.Namespace) -> Any:
    """The input as a `RetrainData`, selected by machine, type and time."""
    from pdm.retrain.source import Selection, read_files, read_recorder

    if (args.data is None) == (args.recorder is None):
        raise DataError("input: found " + ("both --data and --recorder" if args.data else "neither --data nor "
                        "--recorder") + ", expected one of them")
    until = parse_time(args.until, "--until") if args.until else None
    since = parse_time(args.since, "--since") if args.since else None
    last = parse_duration(args.last, "--last") if args.last else None
    selection = Selection(args.machine, args.machine_type, since=since, until=until, last_s=last)
    if args.recorder is not None:
        return read_recorder(args.recorder, selection)
    label = None if str(args.label_column).lower() == "none" else args.label_column
    return read_files(args.data, selection, champion=args.model, timestamp_column=args.timestamp_column,
                      machine_column=args.machine_column, machine_id=args.machine_id, label_column=label,
                      kind_column=args.kind_column)
