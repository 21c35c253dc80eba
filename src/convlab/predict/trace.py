"""How one value of one stage was computed: ``--trace STAGE:CHANNEL:Y:X``.

For a Conv2d, the input window the value reads in each input channel (padding included, as the
conv pads), the kernel, their products and sums, + bias, = the value; for a pool, its window and
the max (or mean); for an activation or batch norm, the formula on the one value it reads. Then
what the value became in the stages right after it: each activation, and the pooling window it
falls in, where it is the max (it goes on) or not (it is dropped). The numbers are read from the
same tensors the model ran on, and the value is checked against the model's own output.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from convlab.errors import ConfigError
from convlab.geometry import axis_windows, layer_padding, pool_stride
from convlab.modules import call_text
from convlab.stages import ELEMENTWISE_KINDS, ConvConfig, PoolConfig
from convlab.terminal import fmt_number

if TYPE_CHECKING:
    import torch

    from convlab.planning import Plan

TRACE_PATTERN = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*")
TRACEABLE = ("conv", "pool", "batchnorm2d", *ELEMENTWISE_KINDS)
# The terminal shows this many input channels' windows in full; the run's 'trace' text all.
SHOWN_CHANNELS = 3
COLOUR_NAMES = {3: ("red", "green", "blue"), 1: ("grey",)}


@dataclass(frozen=True)
class TracePoint:
    stage: int  # 1-based, as the stack's table numbers them
    channel: int
    y: int
    x: int

    def __str__(self) -> str:
        return f"{self.stage}:{self.channel}:{self.y}:{self.x}"


def parse_trace(text: str, plan: Plan) -> TracePoint:
    """``STAGE:CHANNEL:Y:X``, checked against the stack: a map stage, and inside its output."""
    found = TRACE_PATTERN.fullmatch(text)
    if not found:
        raise ConfigError(f"--trace takes STAGE:CHANNEL:Y:X, e.g. --trace 1:0:5:7 (stage 1, channel 0, row 5, column 7); got {text!r}")
    point = TracePoint(*(int(v) for v in found.groups()))
    count = len(plan.stages)
    if not 1 <= point.stage <= count:
        raise ConfigError(f"--trace {point}: the stack has stages 1 to {count}")
    s = plan.stages[point.stage - 1]
    where = f"--trace {point}: stage {point.stage} {call_text(s.cfg)}"
    if len(s.output_shape) != 3 or s.cfg.kind not in TRACEABLE:
        maps = [str(i) for i, t in enumerate(plan.stages, 1) if len(t.output_shape) == 3 and t.cfg.kind in TRACEABLE]
        raise ConfigError(f"{where} gives {_shape_words(s.output_shape)}; --trace follows one value of a map stage: "
                          f"stage {', '.join(maps) or '(none here)'}")
    c, h, w = s.output_shape
    for name, value, size in (("channel", point.channel, c), ("row Y", point.y, h), ("column X", point.x, w)):
        if value >= size:
            raise ConfigError(f"{where} gives maps of (C, H, W) = {tuple(s.output_shape)}: its {name} runs from 0 to {size - 1}, "
                              f"not {value}")
    return point


def _shape_words(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} features per image" if len(shape) == 1 else f"maps of {tuple(shape)}"


# ----------------------------------------------------------------------------- working it out


@dataclass
class ChannelTerms:
    """One input channel's part of a conv value."""

    channel: int
    window: list[list[float]]  # the input values the kernel meets (padding values included)
    kernel: list[list[float]]
    products: list[list[float]]
    total: float


@dataclass
class Trace:
    point: TracePoint
    stage_text: str
    input_text: str  # what the stage's input is
    rows: list[int]  # the window's taps, in input coordinates (negative or past the end: padding)
    cols: list[int]
    input_size: tuple[int, int]
    padding_note: str
    how: list[str]  # the arithmetic, as lines (a pool's window, an activation's formula)
    terms: list[ChannelTerms] = field(default_factory=list)
    total: float = 0.0
    bias: float | None = None
    value: float = 0.0  # as worked out here
    model_value: float = 0.0  # the model's own output at that place
    after: list[str] = field(default_factory=list)  # what the value became in the next stages


def trace(point: TracePoint, plan: Plan, stage_input: torch.Tensor, outputs: list[torch.Tensor]) -> Trace:
    """``point`` worked out for one image: ``stage_input`` is what stage 1 took (1, C, H, W),
    ``outputs`` every stage's output for it."""
    import torch

    k = point.stage - 1
    s = plan.stages[k]
    x_in = (stage_input if k == 0 else outputs[k - 1])[0].detach().double().cpu()
    out = outputs[k][0].detach().cpu()
    c_in, h_in, w_in = x_in.shape
    what = "the image as the model sees it" if k == 0 else f"stage {k} {call_text(plan.stages[k - 1].cfg)}'s output"
    t = Trace(point, f"stage {point.stage} {call_text(s.cfg)}", f"{what}, {tuple(x_in.shape)}", [], [], (h_in, w_in), "", [])
    t.model_value = float(out[point.channel, point.y, point.x])
    cfg = s.cfg
    if isinstance(cfg, (ConvConfig, PoolConfig)):
        axes = axis_windows(cfg, h_in, w_in)
        t.rows, t.cols = list(axes[0].taps(point.y)), list(axes[1].taps(point.x))
        t.padding_note = _padding_note(cfg, t.rows, t.cols, h_in, w_in)
    if isinstance(cfg, ConvConfig):
        _conv_terms(t, cfg, s.module, x_in)
    elif isinstance(cfg, PoolConfig):
        _pool_terms(t, cfg, x_in)
    else:
        v = float(x_in[point.channel, point.y, point.x])
        with torch.no_grad():  # the stage itself on its input: it works on each value on its own
            t.value = float(s.module(x_in.float().unsqueeze(0))[0, point.channel, point.y, point.x])
        t.how = [f"{call_text(cfg)} of the value at the same place of its input, x = {fmt_number(v)}: "
                 f"{_formula(cfg, s.module, point.channel)}"]
    t.after = _after(point, plan, outputs, t.model_value)
    return t


def _padding_note(cfg: ConvConfig | PoolConfig, rows: list[int], cols: list[int], h: int, w: int) -> str:
    outside = [f"rows {_span([r for r in rows if not 0 <= r < h])}" if any(not 0 <= r < h for r in rows) else "",
               f"columns {_span([c for c in cols if not 0 <= c < w])}" if any(not 0 <= c < w for c in cols) else ""]
    outside = [o for o in outside if o]
    if not outside:
        return ""
    if isinstance(cfg, PoolConfig):
        fill = "-inf, never the max" if cfg.mode == "max" else "0, counted in the mean"
    else:
        fill = "0" if cfg.padding_mode == "zeros" else f"copied from the image ({cfg.padding_mode})"
    return f"{' and '.join(outside)} are padding ({fill})"


def _span(values: list[int]) -> str:
    return f"{values[0]}..{values[-1]}" if len(values) > 1 else str(values[0])


def _conv_terms(t: Trace, cfg: ConvConfig, module: torch.nn.Module, x_in: torch.Tensor) -> None:
    from torch.nn import functional as F

    (top, bottom), (left, right) = layer_padding(cfg)
    mode = "constant" if cfg.padding_mode == "zeros" else cfg.padding_mode
    padded = F.pad(x_in.unsqueeze(0), (left, right, top, bottom), mode=mode)[0]
    weight = module.weight.detach().double().cpu()
    per_group_out, per_group_in = cfg.out_channels // cfg.groups, weight.shape[1]
    first = (t.point.channel // per_group_out) * per_group_in
    rows = [r + top for r in t.rows]
    cols = [c + left for c in t.cols]
    for j in range(per_group_in):
        window = padded[first + j][rows][:, cols]
        kernel = weight[t.point.channel, j]
        products = window * kernel
        t.terms.append(ChannelTerms(first + j, window.tolist(), kernel.tolist(), products.tolist(), float(products.sum())))
    t.total = math.fsum(term.total for term in t.terms)
    t.bias = float(module.bias.detach()[t.point.channel]) if module.bias is not None else None
    t.value = t.total + (t.bias or 0.0)
    t.how = [f"{len(t.terms)} input channel(s) x a {len(t.rows)}x{len(t.cols)} window each: every input value times its "
             "kernel weight, all the products summed" + (", + bias" if t.bias is not None else " (no bias)")]


def _pool_terms(t: Trace, cfg: PoolConfig, x_in: torch.Tensor) -> None:
    h, w = t.input_size
    plane = x_in[t.point.channel]
    (top, bottom), (left, right) = layer_padding(cfg)
    inside = [(r, c) for r in t.rows for c in t.cols if 0 <= r < h and 0 <= c < w]
    values = [float(plane[r, c]) for r, c in inside]
    window = [[float(plane[r, c]) if 0 <= r < h and 0 <= c < w else None for c in t.cols] for r in t.rows]
    t.terms.append(ChannelTerms(t.point.channel, window, [], [], 0.0))
    if cfg.mode == "max":
        t.value = max(values)
        r, c = inside[values.index(t.value)]
        t.how = [f"the largest of the {len(values)} input values in its window: {fmt_number(t.value)} at row {r}, column {c}"]
    else:
        # count_include_pad (PyTorch's default): padding counts, taps past the padded input do not.
        counted = sum(1 for r in t.rows for c in t.cols if -top <= r < h + bottom and -left <= c < w + right)
        t.value = math.fsum(values) / counted
        t.how = [f"the mean of its window: {fmt_number(math.fsum(values))} / {counted} = {fmt_number(t.value)}"]


def _formula(cfg: object, module: torch.nn.Module, channel: int) -> str:
    kind = cfg.kind
    if kind == "relu":
        return "max(0, x)"
    if kind == "leakyrelu":
        return f"x if x > 0 else {fmt_number(module.negative_slope)} * x"
    if kind == "sigmoid":
        return "1 / (1 + exp(-x))"
    if kind == "tanh":
        return "tanh(x)"
    if kind == "batchnorm2d":
        mean, var = float(module.running_mean[channel]), float(module.running_var[channel])
        scale = float(module.weight[channel]) if module.weight is not None else 1.0
        shift = float(module.bias[channel]) if module.bias is not None else 0.0
        return (f"(x - running mean {fmt_number(mean)}) / sqrt(running var {fmt_number(var)} + eps {fmt_number(module.eps)}) "
                f"* weight {fmt_number(scale)} + bias {fmt_number(shift)}")
    if kind in ("dropout", "dropout2d", "identity"):
        return "x (dropout does nothing when a trained model is used)" if kind != "identity" else "x"
    return f"{type(module).__name__}(x)"


def _after(point: TracePoint, plan: Plan, outputs: list[torch.Tensor], value: float) -> list[str]:
    """What the value became: each per-position stage after it, then the pool window it falls in."""
    lines, y, x = [], point.y, point.x
    for k in range(point.stage, len(plan.stages)):
        s = plan.stages[k]
        if s.cfg.kind in TRACEABLE and s.cfg.kind != "pool" and s.cfg.kind != "conv":
            new = float(outputs[k][0, point.channel, y, x])
            lines.append(f"stage {k + 1} {call_text(s.cfg)}: {fmt_number(value)} -> {fmt_number(new)}")
            value = new
            continue
        if isinstance(s.cfg, PoolConfig):
            lines += _pooled(point.channel, y, x, value, k, plan, outputs)
        break
    return lines


def _pooled(channel: int, y: int, x: int, value: float, k: int, plan: Plan, outputs: list[torch.Tensor]) -> list[str]:
    s = plan.stages[k]
    cfg = s.cfg
    _, h, w = s.input_shape
    axes = axis_windows(cfg, h, w)
    cells = [(i, j) for i in range(axes[0].count) if y in axes[0].taps(i) for j in range(axes[1].count) if x in axes[1].taps(j)]
    name = f"stage {k + 1} {call_text(cfg)}"
    if not cells:
        sy, sx = pool_stride(cfg)
        return [f"{name}: no window reads row {y}, column {x} (stride {sy}x{sx} passes it by): the value is not used"]
    lines = []
    for i, j in cells[:4]:
        pooled = float(outputs[k][0, channel, i, j])
        rows, cols = list(axes[0].taps(i)), list(axes[1].taps(j))
        where = f"out[{channel}, {i}, {j}] = {cfg.mode} of rows {_span(rows)}, columns {_span(cols)} = {fmt_number(pooled)}"
        if cfg.mode == "max":
            fate = "this value is the max: it goes on" if pooled == value else "this value is not the max: it is dropped here"
        else:
            fate = "this value is one term of the mean"
        lines.append(f"{name}: {where}; {fate}")
    if len(cells) > 4:
        lines.append(f"{name}: and {len(cells) - 4} more overlapping window(s)")
    return lines


# ----------------------------------------------------------------------------- as text


def _decimals(values: list[list[float | None]]) -> int:
    """Decimals that give the matrix's largest value three significant digits (none for integers)."""
    present = [abs(v) for row in values for v in row if v is not None]
    if all(float(v).is_integer() for v in present):
        return 0
    largest = max(present)
    return min(6, max(0, 2 - math.floor(math.log10(largest)))) if largest > 0 else 3


def _matrix(values: list[list[float | None]], d: int | None = None) -> list[str]:
    """A matrix as aligned ``[[...], [...]]`` rows, every cell with the same decimals (``d``, or
    enough for its largest value; None: padding a max pool never picks, shown -)."""
    d = _decimals(values) if d is None else d
    cells = [["-" if v is None else f"{v:.{d}f}" for v in row] for row in values]
    width = max(len(c) for row in cells for c in row)
    return [("[[" if i == 0 else " [") + ", ".join(c.rjust(width) for c in row) + ("]]" if i == len(cells) - 1 else "],")
            for i, row in enumerate(cells)]


def _side_by_side(panels: list[tuple[str, list[str]]], indent: str = "    ", gap: int = 4) -> list[str]:
    widths = [max(len(title), *(len(line) for line in lines)) for title, lines in panels]
    rows = max(len(lines) for _, lines in panels)
    out = [indent + (" " * gap).join(title.ljust(wd) for (title, _), wd in zip(panels, widths)).rstrip()]
    for r in range(rows):
        cells = [(lines[r] if r < len(lines) else "").ljust(wd) for (_, lines), wd in zip(panels, widths)]
        out.append(indent + (" " * gap).join(cells).rstrip())
    return out


def trace_lines(t: Trace, image: str, *, channels: int | None = SHOWN_CHANNELS) -> list[str]:
    """The trace as text: every input channel in full when ``channels`` is None, else the first
    ``channels`` in full and the rest as their sums."""
    p = t.point
    lines = [f"trace {p}: {t.stage_text}, channel {p.channel}, row {p.y}, column {p.x} of {image}"]
    if t.rows:
        lines.append(f"  its window: rows {_span(t.rows)}, columns {_span(t.cols)} of its input ({t.input_text})"
                     + (f"; {t.padding_note}" if t.padding_note else ""))
    else:
        lines.append(f"  its input: {t.input_text}")
    if t.terms and t.terms[0].kernel:
        names = COLOUR_NAMES.get(len(t.terms), ()) if p.stage == 1 else ()
        full = t.terms if channels is None else t.terms[:channels]
        # One number of decimals for every window, every kernel, every product: the channels compare.
        decimals = [_decimals([row for term in full for row in getattr(term, part)]) for part in ("window", "kernel", "products")]
        for term in full:
            colour = f" ({names[term.channel]})" if names else ""
            lines.append(f"  input channel {term.channel}{colour}:")
            lines += _side_by_side([("window", _matrix(term.window, decimals[0])),
                                    (f"x kernel [{p.channel}, {term.channel - t.terms[0].channel}]", _matrix(term.kernel, decimals[1])),
                                    ("= products", _matrix(term.products, decimals[2]))])
            lines.append(f"    sum of products = {fmt_number(term.total)}")
        rest = t.terms[len(full):]
        if rest:
            sums = ", ".join(f"{term.channel}: {fmt_number(term.total)}" for term in rest)
            lines.append(f"  input channels {rest[0].channel}..{rest[-1].channel}, their sums of products (the run's 'trace' text "
                         f"shows each in full): {sums}")
        lines.append(f"  sum over {len(t.terms)} input channel(s) = {fmt_number(t.total)}")
        if t.bias is not None:
            lines.append(f"  + bias {fmt_number(t.bias)}")
    elif t.terms:
        lines += _side_by_side([(f"window of channel {p.channel}", _matrix(t.terms[0].window))])
    lines += ["  " + line for line in t.how[1:] if line] if t.terms and t.terms[0].kernel else ["  " + line for line in t.how]
    lines.append(f"  = {fmt_number(t.value)}   (the model's own value: {fmt_number(t.model_value)})")
    lines += ["  then " + line for line in t.after]
    return lines
