"""What reaches the terminal: a run's progress lines, rich text for the lessons, numbers as
a learner writes them, and the process's standard streams. No torch and no rich at import
time, so ``--help`` stays instant.

The rule for output: a closed, full or abandoned stdout never costs a run. Writes that fail
stop the output, never the work; the process entry (``convlab.__main__``) decides the exit code.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class TerminalReporter:
    """Plain lines on stdout; a progress bar on stderr when it is a terminal."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def info(self, text: str) -> None:
        if not self.quiet:
            try:
                typer.echo(text)
            except OSError:
                # `convlab conv | head` (the reader left) or a full device: the output stops,
                # the run goes on and is kept. Never the run's own write error.
                self.quiet = True

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[..., None]]:
        """``advance()`` after each step; ``advance(status="loss 0.52 ...")`` also shows a status;
        ``advance(steps=0, status="evaluating ...")`` only the status; ``eta=seconds`` replaces the
        bar's own estimate (which counts every pause) with the caller's. Lines printed meanwhile
        (:meth:`info`) appear above the bar."""
        if self.quiet or not sys.stderr.isatty():
            yield lambda status=None, **_: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _eta_column(),
                   TextColumn("{task.fields[status]}"))
        # stdout on the same terminal: rich prints its lines above the bar; redirected: left alone.
        with Progress(*columns, console=Console(stderr=True), transient=True, redirect_stdout=sys.stdout.isatty()) as bar:
            task = bar.add_task(description, total=total, status="", eta=None)

            def advance(status: str | None = None, *, steps: int = 1, eta: float | None = None) -> None:
                fields = {"status": status} if status is not None else {}
                if eta is not None:
                    fields["eta"] = eta
                # A status alone ("evaluating ...") comes before a pause: shown now, not at the next refresh.
                bar.update(task, advance=steps, refresh=steps == 0, **fields)

            yield advance


def _eta_column() -> Any:
    """Rich's time-remaining column, showing the run's own estimate when it gives one."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class EtaColumn(TimeRemainingColumn):
        def render(self, task: Any) -> Text:
            eta = task.fields.get("eta")
            if eta is None or task.finished:
                return super().render(task)
            return Text(f"eta {duration(eta)}", style="progress.remaining")

    return EtaColumn()


def duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``: a time as a clock shows it."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def console() -> Console:
    """Colour on a terminal, plain text when piped (rich decides; NO_COLOR is honoured)."""
    from rich.console import Console

    return Console(highlight=False, emoji=False, markup=False, soft_wrap=True)


def echo(lines: list[Text], out: Console | None = None) -> None:
    out = out or console()
    for line in lines:
        out.print(line)


def fmt_number(value: float) -> str:
    """Integers without a point, other floats short: what a learner would write by hand."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


# ----------------------------------------------------------------------------- standard streams


class StreamSink(io.RawIOBase):
    """A standard stream's file descriptor whose write errors stop the output, not the program.

    The first error (EPIPE when the reader left, ENOSPC on /dev/full, EIO) is kept in
    :attr:`error`; what is written after it is dropped.
    """

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.error is None:
            try:
                return os.write(self._fd, data)
            except OSError as exc:
                self.error = exc
        return len(data)


def guard_standard_streams() -> StreamSink:
    """Give this process a stdout and a stderr that never raise; returns stdout's sink.

    - A closed descriptor (``>&-``) is opened on /dev/null first, so no file a run opens can
      take its number and receive what is printed.
    - Text the terminal's encoding cannot hold (a non-UTF-8 file name, whose byte 0xff Python
      reads as ``\\udcff``) is printed escaped instead of failing: errors="backslashreplace".
      An ASCII encoding is the C locale's guess, not a terminal's: UTF-8 is used, as Python's
      UTF-8 mode does.
    """
    sinks = []
    for fd, name in ((1, "stdout"), (2, "stderr")):
        old = getattr(sys, name)
        if old is not None:
            with contextlib.suppress(OSError, ValueError):
                old.flush()
        _open_on_devnull_if_closed(fd)
        encoding = getattr(old, "encoding", None) or "utf-8"
        if codecs.lookup(encoding).name == "ascii":
            encoding = "utf-8"
        sink = StreamSink(fd)
        # stdout line-buffered on a terminal and block-buffered otherwise; stderr always line-buffered.
        line_buffering = name == "stderr" or sink.isatty()
        stream = io.TextIOWrapper(io.BufferedWriter(sink), encoding=encoding, errors="backslashreplace", line_buffering=line_buffering)
        setattr(sys, name, stream)
        sinks.append(sink)
    return sinks[0]


def _open_on_devnull_if_closed(fd: int) -> None:
    try:
        os.fstat(fd)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
