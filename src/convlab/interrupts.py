"""SIGINT and SIGTERM during a run: raised as :class:`Interrupted`, so the run closes its files.

A run stopped by a signal keeps every step logged so far; the entry point turns the exception
into exit code 128 + N, as shells report a process stopped by signal N.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from convlab.errors import Interrupted


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise :class:`Interrupted`, so a run can close its files.

    Only the first signal raises: later ones would cut short the close that keeps what was
    logged, so they are ignored until the run has closed. A signal that was ignored on entry
    (SIGINT in a background job) stays ignored. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not received:
            received.append(signum)
            raise Interrupted(signum, signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


class StepGuard:
    """What :func:`stop_signals_between_steps` yields: ``with guard.step():`` around each step."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.raised = False
        self.inside = False

    def _raise(self) -> None:
        self.raised = True
        signum = self.received or signal.SIGINT
        raise Interrupted(signum, signal.Signals(signum).name)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """A signal that arrives inside is raised when the step has ended, not during it."""
        self.inside = True
        try:
            yield
        finally:
            self.inside = False
        if self.received is not None and not self.raised:
            self._raise()


@contextlib.contextmanager
def stop_signals_between_steps() -> Iterator[StepGuard]:
    """As :func:`stop_signals_raise`, but a signal that arrives inside ``guard.step()`` is raised
    when that step ends: a training step stopped halfway would leave the weights half-updated
    (an optimizer's step changes one tensor after another). Outside a step it is raised at once.
    """
    guard = StepGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def handler(signum: int, frame: Any) -> None:
        if guard.received is None:
            guard.received = signum
            if not guard.inside:
                guard._raise()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield guard
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def closes_on_signals(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stop_signals_raise():
            return fn(*args, **kwargs)

    return wrapper
