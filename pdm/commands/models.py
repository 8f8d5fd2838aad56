"""``python -m pdm models``: the versions of a model with their figures and which is current; rollback."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pdm.errors import ModelLoadError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models", help="list a model's versions with their figures; roll back",
        description="List the versions of each model under MODELS_DIR (or of MODELS_DIR/NAME): when written, "
        "how (train or retrain, and the retrain's decision), threshold, the held-out raise rate and fault recall "
        "of retrained versions next to the champion they were judged against, and which version is current (*). "
        "--rollback switches current back to VERSION, by default the newest earlier version that was current; the "
        "target is verified first and current is replaced atomically. Exit 2 on errors, 4 when a retrain holds "
        "the model's lock.",
    )
    p.add_argument("path", type=Path, metavar="MODELS_DIR[/NAME]")
    p.add_argument("--rollback", nargs="?", const="", metavar="VERSION",
                   help="make VERSION current (default: the previous one); needs MODELS_DIR/NAME")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(run=run)


def _names(path: Path) -> list[Path]:
    """``path`` itself when it is a model name directory, else its model name sub-directories."""
    if (path / "current").is_file():
        return [path]
    if not path.is_dir():
        raise ModelLoadError(path, "does not exist", "pass MODELS_DIR or MODELS_DIR/NAME")
    names = sorted(p for p in path.iterdir() if p.is_dir() and (p / "current").is_file())
    if not names:
        raise ModelLoadError(path, "holds no model (no NAME/current below it)",
                             "pass MODELS_DIR or MODELS_DIR/NAME written by pdm train or pdm retrain")
    return names


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.0%}"


def _rate(v: Any) -> str:
    return "-" if v is None else f"{v:.2g}"


def run(args: argparse.Namespace) -> int:
    from pdm.retrain.catalog import list_versions, rollback
    from pdm.retrain.lock import LockedError

    if args.rollback is not None:
        if not (args.path / "current").is_file():
            raise ModelLoadError(args.path, "is not a model name directory (no current)",
                                 "pass MODELS_DIR/NAME with --rollback")
        try:
            before, after = rollback(args.path, args.rollback or None)
        except LockedError as exc:
            import sys

            print(f"error: {exc}", file=sys.stderr)
            return 4
        print(f"rolled back {args.path.name}: current {before} -> {after} (verified)")
        return 0
    listing = {p.name: list_versions(p) for p in _names(args.path)}
    if args.json:
        print(json.dumps({n: [v.to_dict() for v in vs] for n, vs in listing.items()}, indent=2))
        return 0
    header = (f"  {'version':20s} {'written (UTC)':16s} {'origin':8s} {'decision':13s} {'threshold':>9s} "
              f"{'rows':>9s} {'raise':>8s} {'champ.':>8s} {'recall':>6s} {'champ.':>6s} {'excl.':>5s}  against")
    for name, infos in listing.items():
        print(f"{name} ({len(infos)} version(s)); raise = held-out raise rate, recall = labelled faults detected")
        print(header)
        for v in infos:
            f = v.figures
            when = datetime.fromtimestamp(v.created_at, UTC).strftime("%Y-%m-%d %H:%M") if v.created_at else "-"
            thr = "-" if f.get("threshold") is None else f"{f['threshold']:.4g}"
            print(f"{'*' if v.current else ' '} {v.version:20s} {when:16s} {v.origin:8s} {v.decision or '-':13s} "
                  f"{thr:>9s} {f.get('rows') or '-'!s:>9s} {_rate(f.get('raise_rate')):>8s} "
                  f"{_rate(f.get('champion_raise_rate')):>8s} {_pct(f.get('event_recall')):>6s} "
                  f"{_pct(f.get('champion_event_recall')):>6s} {_pct(f.get('excluded')):>5s}  "
                  f"{f.get('against') or '-'}")
    return 0
