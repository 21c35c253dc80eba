"""``python -m convlab`` and the ``convlab`` command: process entry and exit policy in one place.

Every user error ends in one line ``convlab: error: ...`` and exit code 2; exit code 1 is
kept for bugs. :func:`main` runs in-process (the tests call it); :func:`console_main` is the
process entry: it owns the standard streams and leaves fast once torch is loaded.

Output that cannot be written never costs a run (see convlab.terminal): a reader that left
(``| head -1``) or a closed stdout (``>&-``) end in exit 0 as if everything was read; a stdout
that fails (``> /dev/full``, EIO) ends, once the work is done and kept, in one line on stderr
and exit 2, since what was asked to be printed was lost.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import traceback
import warnings

# numpy's OpenBLAS runs a thread per core for vector work (TensorBoard's histogram takes a dot
# product over every output value): on 2 busy cores those threads spin against the PNG encoders,
# and one histogram took ~15 ms instead of under 1 ms (cProfile of a CIFAR10 conv run). One
# thread, as pipeline.run does for torch; set before numpy loads, unless the user chose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer  # noqa: E402 - after the thread setting above

from convlab import terminal
from convlab.cli import app
from convlab.errors import ConvlabError, Interrupted, allocation_failed

try:  # typer >= 0.2x vendors click; its usage errors derive from TyperException
    from typer import TyperException as _UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click import ClickException as _UsageError


def _fail(message: str, code: int) -> None:
    # One line, no traceback: the message already says what is wrong and how to fix it.
    message = " ".join(str(message).split())
    typer.echo(f"convlab: error: {message}", err=True)
    sys.exit(code)


def _debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Take ``--debug`` out of the arguments wherever it is, so every command accepts it."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--debug"]
    debug = len(head) < end or os.environ.get("CONVLAB_DEBUG", "") not in ("", "0")
    return head + argv[end:], debug


def _quiet_thread_errors(args: threading.ExceptHookArgs) -> None:
    # TensorBoard's writer thread dies on a write error (disk full) and the main thread raises
    # the same error on its next write, where it is reported in one line; don't print it twice.
    if issubclass(args.exc_type, OSError):
        return
    threading.__excepthook__(args)


def main(argv: list[str] | None = None) -> None:
    """The command line, in-process (the tests call this): every user error ends in one line and exit code 2.

    Exit codes: 0 done, 1 internal error (a bug), 2 user error, 128 + N stopped by signal N
    (130 Ctrl-C, 143 SIGTERM).
    """
    argv, debug = _debug_flag(list(sys.argv[1:] if argv is None else argv))
    hook = threading.excepthook
    if not debug:
        threading.excepthook = _quiet_thread_errors
    try:
        with warnings.catch_warnings():
            if not debug:
                # A library's warning (torch's TypedStorage, std() of one value, ...) is advice to the
                # programmer who called it, printed raw before convlab's own line: --debug shows them.
                warnings.simplefilter("ignore")
            _run_app(argv, debug)
    finally:
        threading.excepthook = hook


def console_main() -> None:
    """The ``convlab`` command (and ``python -m convlab``): standard streams that never raise
    (terminal.guard_standard_streams), :func:`main`, the exit code for lost output, a fast exit.

    Once torch is imported, the interpreter's own teardown takes about 2 s on a 2-core machine
    and touches over 100 MB more memory (measured with bench/bench.py: longer than a whole
    CIFAR10 run). By then every run file is closed and summary.json written, so flush the
    standard streams and leave with ``os._exit``. In-process callers (tests) use ``main``.
    """
    stdout = terminal.guard_standard_streams()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            typer.echo(str(exc.code), err=True)
    sys.stdout.flush()  # the guarded streams never raise; what failed is in stdout.error
    code = _exit_code_after_output(stdout.error, code)
    if "torch" not in sys.modules:
        sys.exit(code)
    sys.stderr.flush()
    os._exit(code)


def _exit_code_after_output(error: OSError | None, code: int) -> int:
    """A stdout that failed turns a success into exit 2; a reader that left changes nothing."""
    if error is None or error.errno == errno.EPIPE or code != 0:
        return code
    reason = error.strerror or type(error).__name__
    typer.echo(f"convlab: error: cannot write to stdout: {reason}; only the printed output was lost, never a run", err=True)
    return 2


def _run_app(argv: list[str], debug: bool) -> None:
    try:
        code = app(args=argv, prog_name="convlab", standalone_mode=False)
    except Interrupted as exc:
        typer.echo(f"convlab: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ConvlabError as exc:
        _fail(str(exc), exc.exit_code)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `convlab` or `convlab demo` alone: the help was asked for
            text = exc.format_message()  # typer's rich help is already printed, and this is empty
            if text.strip():
                typer.echo(text)
            sys.exit(0)
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see: {ctx.command_path} --help)"
        _fail(exc.format_message() + hint, getattr(exc, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        typer.echo("convlab: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        asked = allocation_failed(exc)
        if asked is not None:  # before a run had a plan to say which stage (planning.memory_error says it in a run)
            _fail(f"out of memory: an allocation of {asked or 'memory'} failed; lower --batch-size, or the layers' channels", 2)
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]  # torch appends C++ frames
        what = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        fix = "please report it with the traceback above" if debug else "rerun with --debug for the traceback and report it"
        _fail(f"internal error ({what}); this is a bug in convlab: {fix}", 1)
    sys.exit(code or 0)


if __name__ == "__main__":
    console_main()
