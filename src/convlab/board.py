"""convlab board: the real TensorBoard server on a logdir, keeping every logged image step.

TensorBoard keeps a random 10 images per tag unless told otherwise, and
``--samples_per_plugin images=0`` (documented as "keep all") shows no image at all in
TensorBoard 2.x: the images plugin downsamples to 0. So the board asks for a number that
covers every step of every run it can see.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError
from convlab.runs import read_summary

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6006
# Covers a whole CIFAR10 train split at the default batch size (782 steps), so runs logged
# while the board is open keep every step too; TensorBoard holds only the images that exist.
MIN_IMAGE_SAMPLES = 1000
EVENT_FILE_GLOB = "*tfevents*"
# A summary claiming more steps than this was not written by a run (TensorBoard refuses a
# sample count past 2**63 outright); such a summary is ignored.
MAX_STEPS = 10_000_000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::")


class BoardError(ConvlabError):
    """The board cannot start: no runs to show, or the address cannot be served."""


def find_runs(logdir: str | Path) -> list[Path]:
    """Every directory under ``logdir`` that holds an event file (what TensorBoard calls a run)."""
    logdir = Path(logdir)
    if not logdir.exists():
        raise BoardError(f"--logdir {logdir} does not exist; run an experiment first, e.g. convlab conv --dataset shapes --logdir {logdir}")
    if not logdir.is_dir():
        raise BoardError(f"--logdir {logdir} is a file, not a directory of runs")
    runs = sorted({p.parent for p in _event_files(logdir)})
    if not runs:
        raise BoardError(
            f"no TensorBoard runs in {logdir}/ (no event files); run an experiment first, "
            f"e.g. convlab conv --dataset shapes --logdir {logdir}"
        )
    return runs


def _event_files(logdir: Path) -> Iterator[Path]:
    for path in logdir.rglob(EVENT_FILE_GLOB):
        if path.is_file():
            yield path


def logged_steps(run_dir: Path) -> int:
    """The steps a convlab run logged (or planned, while it is still running); 0 if unknown."""
    summary = read_summary(run_dir) or {}
    counts = [summary.get(k) for k in ("steps", "planned_steps")]
    plausible = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_STEPS]
    return max(plausible, default=0)


def image_samples(runs: list[Path]) -> int:
    """How many images per tag TensorBoard must keep to show every step of these runs."""
    return max([MIN_IMAGE_SAMPLES, *(logged_steps(r) for r in runs)])


def view_commands(logdir: str | Path) -> tuple[str, str]:
    """``convlab board`` and the plain ``tensorboard`` command that show every step of ``logdir``."""
    runs = sorted({p.parent for p in _event_files(Path(logdir))}) if Path(logdir).is_dir() else []
    quoted = shlex.quote(str(logdir))
    return (
        f"convlab board --logdir {quoted}",
        f"tensorboard --logdir {quoted} --samples_per_plugin images={image_samples(runs)}",
    )


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def serve(
    logdir: str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    info: Callable[[str], None] = print,
) -> None:
    """Serve TensorBoard on ``logdir`` until Ctrl-C (or SIGTERM); then stop it and return.

    ``port`` 0 takes any free port; the URL printed says which.
    """
    runs = find_runs(logdir)
    samples = image_samples(runs)

    from tensorboard import program
    from tensorboard import version as tb_version

    servers: list[Any] = []

    def make_server(wsgi_app: Any, flags: Any) -> Any:
        servers.append(program.create_port_scanning_werkzeug_server(wsgi_app, flags))
        return servers[-1]

    tb = program.TensorBoard(server_class=make_server)
    tb.configure(
        logdir=str(logdir),
        host=host,
        port=port,
        samples_per_plugin={"images": samples},
    )
    url = _launch(tb, program, host, port)

    info(f"TensorBoard {tb_version.VERSION} on {logdir}: {len(runs)} run(s), every step (up to {samples} images per tag)")
    if not is_loopback(host):
        info(f"note: serving on {host}, not only this machine: anyone who can reach it can see these logs")
    info(f"open {url}")
    info(f"images: {url}#images")
    info("press Ctrl-C to stop")
    try:
        _wait_for_interrupt()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    info("convlab board: stopped")


def _launch(tb: Any, program: Any, host: str, port: int) -> str:
    """``tb.launch()``, its failures as one-line errors, minus its "experimental" loader note.

    TensorBoard still picks its loader: the Rust data server where it is installed (all 157
    steps of a CIFAR10 test-split run load in about 0.1 s, against about 17 s in Python). The
    note names flags that convlab board does not take, so it is dropped; other output stays.
    """
    note = getattr(program, "_DATA_SERVER_ADVISORY_MESSAGE", None)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            url = tb.launch()
    except program.TensorBoardPortInUseError:
        raise BoardError(
            f"port {port} on {host} is already in use (another TensorBoard?); "
            "choose another with --port, or --port 0 for any free one"
        ) from None
    except program.TensorBoardServerException as exc:
        raise BoardError(f"cannot serve on {host}:{port}: {exc.msg}") from None
    except (OSError, SystemExit) as exc:
        # werkzeug prints why it cannot bind (e.g. an address not on this machine) and exits.
        text = captured.getvalue().replace(note, "") if note else captured.getvalue()
        lines = text.strip().splitlines() or [getattr(exc, "strerror", None) or str(exc)]
        raise BoardError(f"cannot serve on {host}:{port}: {lines[0]}; check --host and --port") from None
    text = captured.getvalue()
    sys.stderr.write(text.replace(note, "") if note else text)
    if host in WILDCARD_HOSTS:  # a URL that other machines can use
        import socket

        url = url.replace(f"//{host}:", f"//{socket.gethostname()}:", 1).replace(f"//[{host}]:", f"//{socket.gethostname()}:", 1)
    return url


def _wait_for_interrupt() -> None:
    import signal
    import threading

    """Block until Ctrl-C or SIGTERM, both of which end the board cleanly."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
