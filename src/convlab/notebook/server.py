"""``convlab.board`` in a notebook: TensorBoard's own notebook support (``%tensorboard``) starts the
server on a logdir, keeping every logged step of every image tag, and shows it in a frame (Jupyter,
Colab); a :class:`Board` says where it is and stops it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from convlab.notebook.api import user_errors


@dataclass(frozen=True)
class Board:
    """A TensorBoard server started for the notebook: where it is, and how to stop it."""

    logdir: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/"

    def show(self, height: int = 800) -> None:
        """Show it (again) in the notebook: TensorBoard's own frame (Jupyter, Colab)."""
        from tensorboard import notebook

        notebook.display(port=self.port, height=height)

    def stop(self) -> None:
        """Stop the server."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def __repr__(self) -> str:
        return f"Board({self.logdir!r} on {self.url}, pid {self.pid})"


def board(logdir: str | Path = "logs", *, port: int = 0, height: int = 800) -> Board:
    """TensorBoard in the notebook, on ``logdir`` (every run below it), keeping every logged step of every
    image tag (not TensorBoard's random 10): TensorBoard's own notebook support (``%tensorboard``), which
    starts a server (or reuses one started with the same settings) and shows it in a frame, in Jupyter
    and Colab. ``port`` 0 takes a free one. Returns the :class:`Board` (``stop()`` ends the server)."""
    from tensorboard import manager, notebook

    from convlab.board import BoardError, find_runs, image_samples

    with user_errors():
        samples = image_samples(find_runs(logdir))
        arguments = ["--logdir", str(logdir), "--port", str(port), "--samples_per_plugin", f"images={samples}"]
        with _tensorboard_binary():
            started = manager.start(arguments)
        info = getattr(started, "info", None)
        if info is None:
            why = getattr(started, "stderr", None) or getattr(started, "os_error", None) or started
            raise BoardError(f"TensorBoard did not start on {logdir}: {str(why).strip().splitlines()[-1:]}")
        notebook.display(port=info.port, height=height)
        return Board(str(logdir), info.port, info.pid)


@contextlib.contextmanager
def _tensorboard_binary() -> Iterator[None]:
    """The ``tensorboard`` beside this Python (a kernel's PATH may not have its environment's bin)."""
    beside = Path(sys.executable).with_name("tensorboard")
    if "TENSORBOARD_BINARY" in os.environ or not beside.is_file():
        yield
        return
    os.environ["TENSORBOARD_BINARY"] = str(beside)
    try:
        yield
    finally:
        os.environ.pop("TENSORBOARD_BINARY", None)
