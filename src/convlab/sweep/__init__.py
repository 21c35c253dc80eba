"""convlab sweep: one experiment over every combination of a few layer settings, in one pass.

A sweep is what ``convlab conv|pool|stack`` would run (flags and ``--config``, resolved as usual)
and the layer keys to vary. :mod:`.grid` decides every combination before any data is loaded;
:mod:`.run` reads the data once, each batch through every combination (each logged exactly
as the single command logs it) before the next; :mod:`.compare` draws the run ``compare``,
the same images through every combination side by side.
"""

from convlab.sweep.grid import Sweep, describe, prepare, run_names, setting_name
from convlab.sweep.run import run

__all__ = ["Sweep", "describe", "prepare", "run", "run_names", "setting_name"]
