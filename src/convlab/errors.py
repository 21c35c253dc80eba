"""The exceptions every module raises for what the user asked, and the exit codes they end in.

A :class:`ConvlabError` is a user error: one line, exit code 2, no traceback. Exit code 1 is
kept for bugs (see ``__main__.py``).
"""

from __future__ import annotations


class ConvlabError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""

    exit_code = 2

    def _render_traceback_(self) -> list[str]:
        """IPython and Jupyter show this instead of a traceback: the one line, as the command line does."""
        return [f"{type(self).__name__}: {self}"]


class ConfigError(ConvlabError):
    """A bad option or config-file value."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped a run; exit code 128 + the signal number, as shells report it.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it; not a
    KeyboardInterrupt, which typer would turn into a silent exit 130 whatever the signal.
    """

    def __init__(self, signum: int, name: str, detail: str = ""):
        super().__init__(signum, name)
        self.signum, self.name, self.detail = signum, name, detail
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return f"interrupted by {self.name}" + (f" {self.detail}" if self.detail else "")
