"""What reaches the terminal: a run's progress lines, rich text for the lessons, numbers as
a learner writes them. No torch and no rich at import time, so ``--help`` stays instant.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

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
            except BrokenPipeError:
                # `convlab conv | head`: the reader left; the run itself goes on and is kept.
                self.quiet = True

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        if self.quiet or not sys.stderr.isatty():
            yield lambda: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


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
