"""A live one-line progress bar on a terminal's stderr.

Drawn by its own daemon thread a few times a second (an ``Event.wait``
timeout, not a busy loop) from counters the run keeps anyway, so the send
loop pays nothing for it. Only used when stderr is a terminal.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable

from kprod.cli.runtime import Console

__all__ = ["ProgressBar"]

_CLEAR = "\r\x1b[K"


class ProgressBar:
    """``[#####-----]  52%  156000/300000 records  48211 rec/s`` on stderr, redrawn in place."""

    def __init__(
        self,
        console: Console,
        total: int,
        done: Callable[[], int],
        failed: Callable[[], int],
        *,
        interval: float = 0.2,
    ) -> None:
        self._console = console
        self._total = total
        self._done = done
        self._failed = failed
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kprod-progress", daemon=True)
        self._start = time.monotonic()
        encoding = (getattr(console.err, "encoding", None) or "ascii").lower()
        self._fill, self._empty = ("█", "░") if encoding.startswith("utf") else ("#", "-")

    def start(self) -> ProgressBar:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop redrawing and erase the bar."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        console = self._console
        with console.lock:
            if console.clear_line:
                console.err.write(_CLEAR)
                console.err.flush()
                console.clear_line = ""

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.draw()

    def render(self, width: int) -> str:
        """The bar's text for a terminal ``width`` columns wide."""
        done = self._done()
        failed = self._failed()
        elapsed = max(time.monotonic() - self._start, 1e-9)
        fraction = min(1.0, (done + failed) / self._total) if self._total else 1.0
        text = f" {fraction * 100:3.0f}%  {done}/{self._total} records  {done / elapsed:.0f} rec/s"
        if failed:
            text += f"  {failed} failed"
        cells = max(10, min(40, width - len(text) - 3))
        filled = int(fraction * cells)
        return ("[" + self._fill * filled + self._empty * (cells - filled) + "]" + text)[: max(width - 1, 1)]

    def draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        line = self.render(width)
        console = self._console
        with console.lock:
            try:
                console.err.write("\r" + line + "\x1b[K")
                console.err.flush()
            except (BrokenPipeError, ValueError):
                self._stop.set()
                return
            console.clear_line = _CLEAR
