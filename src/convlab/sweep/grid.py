"""What a sweep is, decided before any data is loaded: the keys to vary and their values, the
combinations and their run names, each resolved and planned as the single command would.

Values come from ``--vary KEY=V1,V2`` (repeatable) and a ``[sweep]`` table in the config file,
and parse exactly as the same flag or config key would: every combination goes through
:func:`config.resolve` and :func:`pipeline.plan` (shapes, memory, device). A stack's
``layers`` vary as whole layer lists, each split into its calls by
:func:`modules.split_layers` (never evaluated); each run must end in a map, which the
compare picture shows.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from convlab.calls import parse_layer, split_layers
from convlab.config import SWEEP_SECTION, read_config_file, resolve
from convlab.errors import ConfigError, ConvlabError
from convlab.experiment import COMMANDS, Experiment
from convlab.explain.windows import explain
from convlab.geometry import hw
from convlab.modules import LayerError, call_text, torch_name
from convlab.planning import Plan, plan
from convlab.runs import layer_names
from convlab.stack import explain_stack
from convlab.stages import ConvConfig, StageConfig
from convlab.sweep.compare import Column, ComparePicture, OutputStats, tiles_shown
from convlab.trained import MODEL_FILE
from convlab.values import parse_value, switch_or_text, toml_value

# A compare picture of more columns is too wide to read, and each combination costs one
# run's logging per batch.
MAX_COMBINATIONS = 32
# Keys whose one value is itself a comma-separated list (conv's init; a stack's layers):
# their alternatives are separated by ';'.
LIST_KEYS = frozenset({"init", "layers"})
# Quoted as a shell needs them: an unquoted ';' ends the command there.
LIST_EXAMPLES = {"init": "--vary 'init=sobel-x;laplacian'", "layers": "--vary 'layers=Conv2d(3, 8, 3), ReLU(); Conv2d(3, 8, 3), Tanh()'"}
SWEEP_KEYS = ("vary", "skip_invalid")
# How a setting reads in a run name (kernel_size 3 -> "k3"), as in single runs' names.
LETTERS = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "out_channels": "c", "in_channels": "in", "groups": "g",
           "max_channels": "ch", "upto": "upto"}
SWITCH_WORDS = {"ceil_mode": ("ceil", "floor")}
# The flags' own spellings of a key (--kernel, --ceil/--no-ceil), accepted by --vary as the key.
FLAG_NAMES = {"kernel": "kernel_size", "ceil": "ceil_mode"}
# --vary weights=none,FILE: no file, PyTorch's own init (seeded), beside a file's weights.
NO_WEIGHTS = ("none", "random")
# A run name is one directory: within the file systems' 255 bytes, with room for a "-2".
MAX_NAME = 190


@dataclass(frozen=True)
class Varied:
    key: str
    values: tuple[Any, ...]  # as given (flag text, or TOML values), handed to config.resolve
    parsed: tuple[Any, ...]  # as config reads them: names the runs, finds repeats


@dataclass(frozen=True)
class Combination:
    name: str  # its run's directory: what varies, e.g. "k3-ceil"
    settings: tuple[tuple[str, Any], ...]  # (key, parsed value) of each varied key
    plan: Plan | None  # None: invalid
    error: ConvlabError | None = None


@dataclass(frozen=True)
class Sweep:
    command: str
    varied: tuple[Varied, ...]
    runs: tuple[Combination, ...]  # valid and planned, in product order
    skipped: tuple[Combination, ...]
    name: str | None  # --run-name: the sweep's directory (None: sweep-<command>-<time>)

    @property
    def exp(self) -> Experiment:
        """What every combination shares (data, run, views) is this one's."""
        return self.runs[0].plan.exp

    @property
    def hparams_first(self) -> tuple[str, ...]:
        return tuple(f"{self.command}.{v.key}" for v in self.varied)


# ----------------------------------------------------------------------------- what varies


def layer_keys(command: str) -> list[str]:
    """The keys of the command's own config section ([conv], [pool]; a stack's [stack])."""
    return [f.name for f in fields(COMMANDS[command])]


def _check_key(key: str, command: str, where: str) -> None:
    valid = layer_keys(command)
    if key not in valid:
        spellings = {**{k: k for k in valid}, **{f: k for f, k in FLAG_NAMES.items() if k in valid}}
        close = [spellings[c] for c in difflib.get_close_matches(key, spellings, n=1)]
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{where}: '{key}' is not a key of 'convlab {command}'; {hint}keys: {', '.join(valid)}")


def parse_vary(text: str, command: str) -> tuple[str, list[Any]]:
    """``"kernel_size=2,3x5"`` -> ``("kernel_size", ["2", "3x5"])``; ``"ceil_mode=false,true"``
    -> bools, as the ``--ceil/--no-ceil`` flag gives them."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    key = FLAG_NAMES.get(key, key) if key not in layer_keys(command) else key
    if not sep or not key:
        raise ConfigError(f"--vary {text!r}: write KEY=V1,V2 (e.g. --vary kernel_size=2,3)")
    _check_key(key, command, f"--vary {key}")
    separator = ";" if key in LIST_KEYS else ","
    items = [v.strip() for v in values.split(separator)]
    if not all(items):
        raise ConfigError(f"--vary {key}: empty value in {values!r}; separate the values with single '{separator}'")
    return key, [switch_or_text(key, v) for v in items]


def varied_keys(
    command: str, flags: list[str], table: Any, fixed: dict[str, Any], where: str, given: Mapping[str, Any] | None = None,
) -> tuple[Varied, ...]:
    """The file's ``vary`` table, then ``--vary`` flags (a flag replaces the file's list for its
    key), then ``given`` (the notebook API's ``vary={key: [values]}``, as flags); a layer option
    given as a flag pins a key the file varies, as flags beat the file."""
    listed: dict[str, list[Any]] = {}
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: 'vary' must be a table of lists, e.g. vary = {{kernel_size = [2, 3]}}")
    for key, values in table.items():
        _check_key(key, command, f"{where} vary")
        if not isinstance(values, list):
            raise ConfigError(f"{where} vary.{key}: expected a list of values, e.g. [2, 3], got {values!r}")
        if not values:
            raise ConfigError(f"{where} vary.{key} lists no values; a sweep compares two or more: list them, or drop the key")
        if fixed.get(key) is None:
            listed[key] = values
    pairs = [parse_vary(text, command) for text in flags]
    for key, values in (given or {}).items():
        _check_key(key, command, "vary")
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"vary {key}: expected a list of values, e.g. [2, 3], got {values!r}")
        pairs.append((key, list(values)))
    seen: set[str] = set()
    for key, values in pairs:
        if key in seen:
            raise ConfigError(f"--vary {key} is given twice; list all its values in one --vary")
        if fixed.get(key) is not None:
            setter = "the LAYER arguments" if key == "layers" else f"the option that sets {key}"
            raise ConfigError(f"--vary {key} and {setter} are both given; drop one of them")
        seen.add(key)
        listed[key] = values
    if not listed:
        raise ConfigError("nothing to vary: give --vary KEY=V1,V2 (e.g. --vary kernel_size=2,3), or a [sweep] vary table in --config")
    return tuple(_varied(command, key, values) for key, values in listed.items())


def _varied(command: str, key: str, values: list[Any]) -> Varied:
    if key == "layers":
        values = [_layer_list(v) if isinstance(v, str) else v for v in values]
    written = list(values)
    if key == "weights":
        values = [None if isinstance(v, str) and v.strip().lower() in NO_WEIGHTS else v for v in values]
    parsed = [parse_value(command, key, v) for v in values]
    if len(values) < 2:
        hint = f" (separate {key}'s alternatives with ';', e.g. {LIST_EXAMPLES[key]})" if key in LIST_KEYS else ""
        raise ConfigError(f"--vary {key} lists one value ({shown(parsed[0])}); a sweep compares two or more{hint}")
    for (i, a), (j, b) in itertools.combinations(enumerate(parsed), 2):
        if _same_as(key, a) == _same_as(key, b):
            first, second = (shown(a), shown(b)) if key == "layers" else (written[i], written[j])
            raise ConfigError(f"--vary {key}: {first!r} and {second!r} are the same value; list each once")
    return Varied(key, tuple(values), tuple(parsed))


def _layer_list(text: str) -> tuple[str, ...]:
    """One alternative of ``layers``, as a stack's list of layer texts. Text that does not split
    stays whole: config.resolve then names what is wrong with it, as with any invalid combination."""
    try:
        return split_layers(text)
    except LayerError:
        return (text,)


def _same_as(key: str, value: Any) -> Any:
    """What two values must share to be the same setting: a stack's layers as PyTorch reads them."""
    if key != "layers":
        return value
    return tuple(_layer_or_text(t, call_text, " ".join(t.split())) for t in value)


def _layer_or_text(text: str, read: Callable[[StageConfig], str], otherwise: str) -> str:
    """``read`` of the layer ``text`` is, or ``otherwise`` where it is not a layer (resolve says why)."""
    try:
        return read(parse_layer(text))
    except ConfigError:
        return otherwise


def shown(value: Any) -> str:
    """A setting as a learner writes it: 3, 3x5, true, same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return ", ".join(" ".join(t.split()) for t in value)  # a stack's layers, each on one line
    if isinstance(value, tuple):
        return hw(value)
    return "none" if value is None else str(value)


def _layers_name(texts: tuple[str, ...]) -> str:
    """A stack's layers in a run name: its class names, as a single stack's run name lists them."""
    names = []
    for text in texts:
        written = re.match(r"\s*([A-Za-z_][\w.]*)", text)
        names.append(_layer_or_text(text, lambda cfg: torch_name(cfg).lower(),
                                    written.group(1).rsplit(".", 1)[-1].lower() if written else "layer"))
    return "-".join(layer_names(names))


def setting_name(key: str, value: Any) -> str:
    """What one setting adds to a run name: k3, s2, ceil/floor, avgpool, sobel-x+sobel-y."""
    if key in LETTERS:
        text = LETTERS[key] + shown(value)
    elif isinstance(value, bool):
        on, off = SWITCH_WORDS.get(key, (key, f"no{key}"))
        text = on if value else off
    elif key == "mode":
        text = f"{value}pool"
    elif key == "weights":
        # A training run's model.pt is named after its run; PyTorch's own init is "random".
        text = "random" if value is None else Path(value).parent.name if Path(value).name == MODEL_FILE else Path(value).stem
    elif key == "layers":
        text = _layers_name(value)
    else:
        text = str(value).replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("._+=-")[:60] or key


def run_names(settings: list[tuple[tuple[str, Any], ...]]) -> list[str]:
    """One distinct name per combination ('compare' is the sweep's own run)."""
    taken, names = {"compare"}, []
    for combo in settings:
        name = "-".join(setting_name(k, v) for k, v in combo)[:MAX_NAME]
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        taken.add(unique)
        names.append(unique)
    return names


# ----------------------------------------------------------------------------- the grid


def prepare(
    command: str, overrides: dict[str, dict[str, Any]], config_file: str | Path | None, flags: list[str], *,
    skip_invalid: bool = False, vary: Mapping[str, Any] | None = None,
) -> Sweep:
    """Every combination resolved and planned (shapes, memory, device), nothing loaded or written.

    An invalid combination stops the sweep here, named with its reason, unless ``skip_invalid``.
    ``vary``: keys and their lists of values, as ``--vary`` flags give them (the notebook API).
    """
    table: dict[str, Any] = {}
    if config_file is not None:
        table = read_config_file(config_file, command, sweep=True).get(SWEEP_SECTION, {})
    where = f"{config_file} [{SWEEP_SECTION}]"
    for key in table:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{where}: unknown key '{key}'; valid keys: {', '.join(SWEEP_KEYS)}")
    skip = table.get("skip_invalid", False)
    if not isinstance(skip, bool):
        raise ConfigError(f"{where} skip_invalid: expected true or false, got {skip!r}")
    fixed = dict(overrides.get(command, {}))
    varied = varied_keys(command, flags, table.get("vary", {}), fixed, where, vary)
    count = math.prod(len(v.values) for v in varied)
    if count > MAX_COMBINATIONS:
        sizes = " x ".join(f"{len(v.values)} {v.key}" for v in varied)
        raise ConfigError(f"{sizes} make {count} combinations; a sweep compares at most {MAX_COMBINATIONS} side by side")

    choices = list(itertools.product(*(range(len(v.values)) for v in varied)))
    settings = [tuple((v.key, v.parsed[i]) for v, i in zip(varied, choice)) for choice in choices]
    combos, run_name = [], None
    for choice, setting, name in zip(choices, settings, run_names(settings)):
        layer = {**fixed, **{v.key: v.values[i] for v, i in zip(varied, choice)}}
        try:
            exp = resolve(command, {**overrides, command: layer}, config_file, sweep=True)
            if ("weights", None) in setting:
                exp = _without_weights_file(exp)  # not even the config file's
            run_name = exp.run.run_name
            # The sweep's --run-name names its directory; each run is named after what varies.
            p = plan(replace(exp, run=replace(exp.run, run_name=None)))
            _check_ends_in_a_map(p)
            combos.append(Combination(name, setting, p))
        except ConvlabError as exc:
            combos.append(Combination(name, setting, None, exc))

    runs = tuple(c for c in combos if c.plan is not None)
    bad = [c for c in combos if c.plan is None]
    if not runs and len({str(c.error) for c in bad}) == 1:
        raise bad[0].error  # the same for every combination: not about what varies
    if (bad and not (skip_invalid or skip)) or not runs:
        listed = "; ".join(f"{c.name}: {c.error}" for c in bad)
        fix = f"or give --skip-invalid to sweep the other {len(runs)}" if runs else "no combination is valid"
        raise ConfigError(f"invalid combination(s): {listed}; change or drop those values, {fix}")
    sw = Sweep(command, varied, runs, tuple(bad), run_name)
    compare_picture(sw)  # refuses a picture past MAX_VIEW_PIXELS
    return sw


def _without_weights_file(exp: Experiment) -> Experiment:
    if exp.is_stack:
        return replace(exp, stack=replace(exp.stack, weights=None))
    return replace(exp, stages=tuple(replace(s, weights=None) if isinstance(s, ConvConfig) else s for s in exp.stages))


def _check_ends_in_a_map(p: Plan) -> None:
    """The compare picture shows each run's last output as a map; a stack may end in features."""
    if len(p.output_shape) != 3:
        last = p.stages[-1].cfg
        raise ConfigError(
            f"its last stage {call_text(last)} gives {p.output_shape[0]:,} features per image, not a map (C, H, W); "
            "a sweep's compare picture shows each run's last output as a map, so end every alternative before "
            "Flatten() (or run this stack alone with convlab stack)"
        )


def shown_channels(p: Plan) -> int | None:
    """In a stack, the last stage's picture is its channel view of the first --max-channels
    channels; None: a one-layer lesson's tag ('output', 'maxpool'), drawn as that tag draws it."""
    return p.exp.stack.max_channels if p.stages[-1].prefix is not None else None


def shown_as_pixels(p: Plan) -> bool:
    """The last output is shown as it is by its own tag, and its values are the images' [0, 1]:
    pooled images ('maxpool'), or one activation over the images (the activation lesson's 'output')."""
    last = p.stages[-1]
    return last.prefix is None and not isinstance(last.cfg, ConvConfig)


def config_text(sw: Sweep, dump: str) -> str:
    """The sweep as a config file that ``convlab sweep --config`` repeats: ``dump`` (a run's
    config.toml) without the layer keys that differ between runs, and the ``[sweep]`` table."""
    differing = {
        f.name for f in fields(sw.exp.sections()[sw.command])
        if len({repr(getattr(c.plan.exp.sections()[sw.command], f.name)) for c in sw.runs}) > 1
    } | {v.key for v in sw.varied}
    lines, section, in_list = [], None, False
    for line in dump.splitlines():
        if in_list:  # the rest of a list written over several lines (a stack's layers)
            in_list = line != "]"
            continue
        if line.startswith("["):
            section = line.strip("[]")
        key = line.split(" = ")[0]
        if section == sw.command and key in differing:
            lines.append(f"# {key}: set by [sweep] below")
            in_list = line.endswith(" = [")
        else:
            lines.append(line)
    vary = ", ".join(f"{v.key} = [{', '.join(_toml(p) for p in v.parsed)}]" for v in sw.varied)
    lines += ["", f"[{SWEEP_SECTION}]", f"vary = {{ {vary} }}"]
    if sw.skipped:
        lines.append("skip_invalid = true")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):  # a stack's layers, on one line
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, tuple) and value[0] == value[1]:
        return str(value[0])
    return toml_value("none" if value is None else value)


def table_rows(sw: Sweep, stats: list[OutputStats] | None = None) -> list[list[str]]:
    """A header and one row per run: what varies, output shape, parameters, multiply-adds
    (per image, as ``convlab explain`` counts them) and, with ``stats``, the output's mean and std."""
    header = ["run", *(v.key for v in sw.varied), "output (C, H, W)", "parameters", "multiply-adds"]
    if stats is not None:
        header += ["output mean", "output std"]
    rows = [header]
    for i, c in enumerate(sw.runs):
        if sw.command == "stack":
            facts = [explain_stack([s.cfg for s in c.plan.stages], c.plan.input_shape)]
        else:
            facts = [explain(s.cfg, s.input_shape) for s in c.plan.stages]
        row = [c.name, *(shown(v) for _, v in c.settings), str(tuple(c.plan.output_shape))]
        row += [f"{sum(f.parameters for f in facts):,}", f"{sum(f.multiply_adds for f in facts):,}"]
        if stats is not None:
            row += [f"{stats[i].mean:.4g}", f"{stats[i].std:.4g}"]
        rows.append(row)
    return rows


def describe(sw: Sweep) -> str:
    """The table of combinations (and what is skipped) as plain text, for the terminal."""
    rows = table_rows(sw)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    sizes = " x ".join(f"{len(v.values)} {v.key}" for v in sw.varied)
    exp = sw.exp
    head = f"sweep {sw.command} on {exp.data.dataset}/{exp.data.split}: {len(sw.runs)} run(s) ({sizes})"
    return "\n".join([head, *lines, *(f"skipped {c.name}: {c.error}" for c in sw.skipped)])


def compare_picture(sw: Sweep) -> ComparePicture:
    """The layout for ``sw``: the input, then each run's last output, labelled."""
    p = sw.runs[0].plan
    c, h, w = p.input_shape
    columns = [Column(f"input\n{h}x{w}", 1, h, w)]
    for run in sw.runs:
        oc, oh, ow = run.plan.output_shape
        columns.append(Column(f"{run.name}\n{oh}x{ow}", tiles_shown(oc, shown_channels(run.plan)), oh, ow))
    rows = min(sw.exp.views.images, sw.exp.data.batch_size, p.num_images)
    return ComparePicture(columns, rows, sw.exp.views.zoom)
