"""Progress of a long command (``ree batch``, ``ree calibrate``, ``ree validate``).

On a terminal it is a tqdm bar (items done, rate, ETA); off one (a log, a CI job) it is
a plain line at every tenth of the work, never a carriage-return update per item:

    ree batch: 33/330 runs (10 %), 2.9 runs/s, ETA 1m42s
"""

import sys
import time
from types import TracebackType
from typing import IO

STEPS = 10  # plain lines per command off a terminal


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``42s``, ``1m42s``, ``2h05m``."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """Counts finished items of ``total`` (``initial`` of them done before this session).

    ``label`` names the command (``"ree batch"``), ``unit`` the items in the plural
    (``"runs"``). ``enabled=False`` shows nothing. Output goes to ``stream`` (stderr by
    default): a tqdm bar when it is a terminal, otherwise one line per tenth of ``total``
    with the rate (items per second of this session) and the time left. Use it as a
    context manager, or call ``close``.
    """

    def __init__(
        self, label: str, total: int, unit: str = "runs", initial: int = 0, enabled: bool = True,
        stream: IO[str] | None = None,
    ) -> None:
        self.label, self.total, self.unit, self.initial = label, total, unit, initial
        self.done, self.failed = initial, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.started = time.monotonic()
        self._shown_step = self._step()
        self._bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, desc=label, unit=unit.rstrip("s") or unit, file=self.stream,
                dynamic_ncols=True,
            )

    def _step(self) -> int:
        return self.done * STEPS // self.total if self.total else STEPS

    def update(self, count: int = 1, failed: int = 0) -> None:
        """``count`` more items finished, ``failed`` of them failed."""
        self.done += count
        self.failed += failed
        if not self.enabled:
            return
        if self._bar is not None:
            if self.failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)
            self._bar.update(count)
        elif self._step() > self._shown_step:
            self._shown_step = self._step()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """Where the command is, in one line: done/total, share, rate, time left, failures."""
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        left = f"ETA {duration((self.total - self.done) / rate)}" if rate > 0 else "ETA unknown"
        text = f"{self.label}: {self.done}/{self.total} {self.unit} ({100 * self.done // self.total} %), "
        text += f"{rate:.1f} {self.unit}/s, {left}"
        return text + (f", {self.failed} failed" if self.failed else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
