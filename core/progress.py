"""How far a long job is: Keras' Progbar on a terminal, and a plain line every so often in a log.

Off a terminal (CI, `nohup`, `make ... > log`), Keras' Progbar prints one line when the job ends
(verbose=2) and tqdm writes carriage returns that a log shows as one long line, so a job of minutes says
nothing while it runs. `Progress` prints `<label>: 640/2,600 sentences (25%), 41 s` there instead, at most
every `every_seconds` and once at the end.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import keras


class Progress:
    """Counts units of work done out of `total`; shows them as a Progbar or as log lines (see the module)."""

    def __init__(self, total: int, unit: str, label: str, every_seconds: float = 30.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, bar: bool | None = None):
        """`bar`: Keras' Progbar (which writes to stdout), or lines to `stream`; default: the bar on a terminal."""
        self.total, self.unit, self.label = int(total), unit, label
        self.every_seconds = every_seconds
        self.stream = stream or sys.stdout
        self.clock = clock
        self.done = 0
        self.started = self.last_line = clock()
        if bar is None:
            bar = self.stream.isatty()
        self.bar = keras.utils.Progbar(self.total, unit_name=unit, verbose=1) if bar else None

    def add(self, count: int) -> None:
        """`count` more units are done."""
        self.done += count
        if self.bar is not None:
            self.bar.add(count)
            return
        now = self.clock()
        if self.done >= self.total or now - self.last_line >= self.every_seconds:
            self.last_line = now
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            print(f"{self.label}: {self.done:,}/{self.total:,} {self.unit}s{share}, {now - self.started:.0f} s",
                  file=self.stream, flush=True)


@contextlib.contextmanager
def stage(what: str, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Prints `<what> ...` before a step of unknown length and `<what>: 12 s` after it, for jobs made of a few
    such steps (a conversion, say) where a bar would have nothing to count."""
    stream = stream or sys.stdout
    started = clock()
    print(f"{what} ...", file=stream, flush=True)
    yield
    print(f"{what}: {clock() - started:.0f} s", file=stream, flush=True)
