"""``python -m pdm``: parse, configure logging, run. Errors are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pdm import __version__
from pdm.commands import demo, evaluate, info, models, record, retrain, score, serve, train
from pdm.errors import PdmError
from pdm.tf_import import VERBOSE_ENV

EXIT_ERROR = 2
logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pdm",
        description="Predictive-maintenance anomaly detection: a GRU autoencoder learns normal machine telemetry and "
        "flags windows whose reconstruction error crosses a calibrated threshold.",
    )
    parser.add_argument("--version", action="version", version=f"pdm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (train, score, evaluate, info, demo, serve, record, retrain, models):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose >= 2:
        os.environ[VERBOSE_ENV] = "1"  # TensorFlow's own start-up lines too (`pdm.tf_import`)
    try:
        return int(args.run(args))
    except PdmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
