"""The demo's terminal view: a live table of machines (state, score against threshold, faults, alerts) and the
latest events, drawn with rich when the output is a terminal; plain event lines otherwise (CI, pipes, logs)."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pdm.demo.observer import MachineView, Observer, clock

STATE_STYLE = {"normal": "green", "alert": "bold red", "warming_up": "yellow", "stale": "magenta",
               "maintenance": "cyan", "unknown": "dim"}


def score_bar(score: float | None, threshold: float | None, width: int = 20) -> Text:
    """``score / threshold`` as a bar: full at 2x the threshold, red from 1x.

    >>> score_bar(1.0, 2.0, width=10).plain
    '██         0.50'
    >>> score_bar(1.0, 1.0, width=10).plain
    '█████      1.00'
    >>> score_bar(None, 1.0).plain
    '-'
    """
    if score is None or not threshold:
        return Text("-")
    ratio = score / threshold
    filled = max(0, min(width, round(ratio / 2 * width)))
    style = "red" if ratio >= 1 else "yellow" if ratio >= 0.5 else "green"
    return Text("█" * filled, style=style) + Text(" " * (width - filled) + f" {ratio:.2f}")


def machine_table(rows: list[MachineView], sim_now: float | None) -> Table:
    table = Table(title=f"fleet at {clock(sim_now)} (simulated, UTC)", expand=False)
    for col in ("machine", "type", "state", "score / threshold", "faults now (truth)", "alerts", "model"):
        table.add_column(col)
    for m in rows:
        active = [f"{f.fault}{'/' + f.sensor if f.sensor else ''}" for f in m.faults.values() if f.end is None]
        open_ = sum(1 for e in m.episodes.values() if e.cleared is None)
        table.add_row(m.machine_id, m.machine_type, Text(m.state, style=STATE_STYLE.get(m.state, "")),
                      score_bar(m.score, m.threshold), ", ".join(active) or "",
                      f"{len(m.episodes)}" + (f" ({open_} open)" if open_ else ""), m.model)
    return table


class LiveView:
    """Refreshes from an `Observer`; ``rich`` on a terminal, plain new-event lines otherwise."""

    def __init__(self, observer: Observer, out: TextIO | None = None, interactive: bool | None = None) -> None:
        self.observer = observer
        self.out = out or sys.stdout
        self.interactive = self.out.isatty() if interactive is None else interactive
        self.console = Console(file=self.out)
        self._live: Live | None = None
        self._printed = 0

    def __enter__(self) -> LiveView:
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def refresh(self) -> None:
        snap = self.observer.snapshot()
        if self._live is not None:
            services = "  ".join(f"{k}: {v}" for k, v in sorted(snap.statuses.items()))
            log = Text("\n".join(snap.events[-8:]) or "(no events yet)", style="dim")
            self._live.update(Group(Text(services), machine_table(snap.machines, snap.sim_now),
                                    Text("latest events:"), log))
            return
        new = snap.events_total - self._printed
        for line in snap.events[max(0, len(snap.events) - new):]:
            print(line, file=self.out, flush=True)
        self._printed = snap.events_total

