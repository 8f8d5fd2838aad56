"""``python -m pdm retrain``: train a challenger on recent normal data, promote it only when it is not worse.

Exit codes (for schedulers): 0 the challenger was promoted (or was the first version), 3 the champion was kept
(the challenger is saved, not current), 4 another retrain of this model holds its lock, 2 any other error
(one ``error:`` line), 130 interrupted. With ``--every`` the command loops (`pdm.retrain.schedule`) and exits 0 when
stopped by SIGTERM or SIGINT; each run's outcome is logged. The flags: `pdm.commands.retrain_args`.
"""

from __future__ import annotations

import argparse
import sys

from pdm.commands.retrain_args import add_arguments, options_from, read_input

EXIT_PROMOTED, EXIT_ERROR, EXIT_KEPT, EXIT_LOCKED = 0, 2, 3, 4

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
    add_arguments(p)
    p.set_defaults(run=run)  # TensorFlow is imported (quietly) only when a Keras model is built


def once(args: argparse.Namespace) -> int:
    """One retrain: read, train, judge, save, print the summary; the exit code."""
    from pdm.retrain.progress import make_progress
    from pdm.retrain.report import outcome_lines
    from pdm.retrain.run import retrain

    options = options_from(args)
    data = read_input(args)
    with make_progress(sys.stderr.isatty()) as progress:
        outcome = retrain(data, args.model, options, progress)
    print("\n".join(outcome_lines(outcome)))
    return EXIT_PROMOTED if outcome.promoted else EXIT_KEPT


def run(args: argparse.Namespace) -> int:
    from pdm.retrain.lock import LockedError
    from pdm.retrain.schedule import parse_interval, run_every

    if args.every is not None:
        every = parse_interval(args.every)
        options_from(args)  # bad options fail now, not at the first run
        return run_every(every, lambda: once(args))
    try:
        return once(args)
    except LockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
