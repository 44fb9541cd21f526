"""The one progress reporter: what each pass is doing, on stderr.

Passes and the driver send typed events (``lmpc.compiler.passes.base``: ``PassStarted``,
``Progress``, ``PassFinished``, ``BuildWarning``); only this reporter writes them. On a
terminal it draws a live bar per pass with rich — the pass's LM requests against the
dry run's projection of them (so the ETA follows it), the stage it is in (candidate i
of n, trial i of n, examples i of n), the running best score, examples evaluated and
requests sent. Elsewhere (CI logs, pipes) it prints plain lines: one per pass start and
end, one per finished candidate or trial, and otherwise at most one every
``HEARTBEAT_S`` seconds, so a long stage is never silent and logs stay short.
Warnings are always printed, even with ``--quiet``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from lmpc.compiler.passes.base import (
    BuildNote,
    BuildWarning,
    PassFinished,
    PassStarted,
    Progress,
)

HEARTBEAT_S = 15.0


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def detail(event: Progress, best: float | None = None) -> str:
    """One event as text: ``trial 3/10 trial 3 · score 50.0% · best 62.5% · ...``."""
    parts = [event.stage]
    if event.done is not None and event.total:
        parts[0] += f" {event.done}/{event.total}"
    if event.label:
        parts[0] += f" {event.label}"
    if event.score is not None:
        parts.append(f"score {_pct(event.score)}")
    best = event.best if event.best is not None else best
    if best is not None:
        parts.append(f"best {_pct(best)}")
    if event.examples:
        parts.append(f"{event.examples} examples")
    if event.requests:
        parts.append(f"{event.requests} calls")
    return " · ".join(parts)


class ProgressReporter:
    """Turns build events into a live display (a terminal) or plain lines. Thread-safe."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True,
                 interactive: bool | None = None, width: int | None = None) -> None:
        self.stream = stream or sys.stderr
        self.width = width  # of the live display; None: the terminal's
        self.enabled = enabled
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._lock = threading.Lock()
        self._best: dict[str, float] = {}
        self._last_line = 0.0
        self._live: Any = None  # rich.progress.Progress, made on the first event
        self._tasks: dict[str, Any] = {}
        self._plans: dict[str, tuple[float, int]] = {}  # pass -> (start, projected requests)
        self.started = time.monotonic()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if isinstance(event, BuildWarning):
                self._warn(event)
            elif isinstance(event, BuildNote):
                if self.enabled:
                    self._print(f"note: {event.message}")
            elif self.enabled:
                self._handle(event)

    # ------------------------------------------------------------ events

    def _handle(self, event: Any) -> None:
        if isinstance(event, PassStarted):
            self._best.pop(event.pass_name, None)
            if event.requests:
                self._plans[event.pass_name] = (time.monotonic(), event.requests)
            if self.interactive:
                self._task(event.pass_name, event)
            else:
                where = f" (pass {event.index + 1}/{event.total})" \
                    if event.index is not None and event.total else ""
                plan = f" · projected ~{event.projected} LM calls" \
                    if event.projected is not None and event.index is not None else ""
                self._line(f"{event.pass_name}{where}{plan}")
        elif isinstance(event, Progress):
            for value in (event.score if event.finished else None, event.best):
                if value is not None:
                    old = self._best.get(event.pass_name)
                    self._best[event.pass_name] = value if old is None else max(old, value)
            text = detail(event, self._best.get(event.pass_name))
            if self.interactive:
                self._update(event, text.replace(f" · {event.requests} calls", ""))
            elif event.finished or time.monotonic() - self._last_line >= HEARTBEAT_S:
                self._line(f"{event.pass_name} · {text}{self._eta(event)}")
        elif isinstance(event, PassFinished):
            best = event.best if event.best is not None else self._best.get(event.pass_name)
            parts = [f"{event.pass_name} done"]
            if event.requests:
                parts.append(f"{event.requests} LM requests")
            if best is not None:
                parts.append(("best " if event.requests else "score ") + _pct(best))
            if self.interactive:
                task = self._tasks.get(event.pass_name)
                if task is not None:
                    self._live.update(task, detail=" · ".join(parts[1:]) or "done",
                                      completed=self._live.tasks[task].total or 1)
                    self._live.stop_task(task)
            else:
                self._line(" · ".join(parts))

    def _eta(self, event: Progress) -> str:
        """`` · eta ~Ns`` from the requests sent against the projection (plain lines)."""
        start, total = self._plans.get(event.pass_name, (0.0, 0))
        if not total or not event.requests or event.requests >= total:
            return ""
        spent = time.monotonic() - start
        return f" · eta ~{spent * (total - event.requests) / event.requests:.0f}s"

    def _warn(self, event: BuildWarning) -> None:
        text = f"warning[{event.code}]: {event.message}"
        if event.hint:
            text += f"\n  help: {event.hint}"
        self._print(text)

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # ------------------------------------------------------------ plain lines

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:6.1f}s] {text}\n")
        self.stream.flush()
        self._last_line = time.monotonic()

    # ------------------------------------------------------------ the live display

    def _task(self, name: str, started: PassStarted | None = None) -> Any:
        if self._live is None:
            self._live = _make_live(self.stream, self.width)
            self._live.start()
        task = self._tasks.get(name)
        if task is None:
            where = ""
            if started is not None and started.index is not None and started.total:
                where = f" ({started.index + 1}/{started.total})"
            total = None
            if started is not None:
                total = started.requests or started.projected or None
            task = self._live.add_task(f"{name}{where}", total=total, detail="starting",
                                       unit="calls" if started is not None
                                       and started.index is not None else "examples")
            self._tasks[name] = task
        return task

    def _update(self, event: Progress, text: str) -> None:
        task = self._task(event.pass_name)
        state = self._live.tasks[task]
        if state.fields.get("unit") == "calls" and state.total:
            completed = min(event.requests, state.total)
        elif event.done is not None and event.total:
            # no projection (or an evaluation): the stage's own count drives the bar
            self._live.update(task, total=event.total)
            completed = event.done
        else:
            completed = state.completed
        self._live.update(task, completed=completed, detail=text)

    def close(self) -> None:
        """Stop the live display so later output starts on a clean line."""
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
                self._tasks.clear()


def _make_live(stream: TextIO, width: int | None) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    console = Console(file=stream, force_terminal=True, width=width)
    return RichProgress(
        TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
        console=console, refresh_per_second=4,
    )
