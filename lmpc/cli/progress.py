"""The one progress reporter: pass, candidate and running best score, on stderr.

Library code sends events (plain dicts) through ``PassContext.progress``; only this
reporter writes them. On a terminal it redraws one status line; otherwise (CI logs,
pipes) it prints a line per finished step, so logs stay short.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class ProgressReporter:
    """Turns build events into a status line on stderr. Thread-safe."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True,
                 interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._lock = threading.Lock()
        self._best: dict[str, float] = {}
        self._width = 0
        self._last_draw = 0.0
        self.started = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._handle(event)

    def _handle(self, event: dict[str, Any]) -> None:
        name = str(event.get("pass", ""))
        score = event.get("score")
        if isinstance(score, int | float) and "candidate" in event:
            self._best[name] = max(self._best.get(name, 0.0), float(score))
        line = self._describe(name, event)
        final = bool(event.get("started") or event.get("finished") or "candidate" in event)
        if self.interactive:
            if final or time.monotonic() - self._last_draw > 0.1:
                self._draw(line)
        elif final:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _describe(self, name: str, event: dict[str, Any]) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"[{elapsed:6.1f}s] {name}"]
        if event.get("started") and "total" in event:
            parts.append(f"(pass {int(event.get('index', 0)) + 1}/{event['total']})")
        if "candidate" in event:
            parts.append(f"candidate {event['candidate']}")
        if "done" in event and "total" in event:
            parts.append(f"{event['done']}/{event['total']}")
        if isinstance(event.get("score"), int | float):
            parts.append(f"score {_pct(event['score'])}")
        best = event.get("best", self._best.get(name))
        if isinstance(best, int | float) and "candidate" in event:
            parts.append(f"best {_pct(best)}")
        return " · ".join(parts) if len(parts) > 1 else parts[0]

    def _draw(self, line: str) -> None:
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)
        self._last_draw = time.monotonic()

    def close(self) -> None:
        """End the status line (on a terminal) so later output starts on a fresh line."""
        with self._lock:
            if self.enabled and self.interactive and self._width:
                self.stream.write("\n")
                self.stream.flush()
                self._width = 0


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"
