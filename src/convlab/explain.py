"""The arithmetic of one layer, explained: what ``convlab explain`` prints and every run logs.

Built on :mod:`convlab.geometry` (the output-size formula, where each window sits) and
:mod:`convlab.layers` (the shape checks): this module says what each window reads, what it
costs and what it leaves out.
No torch here, so ``convlab explain`` answers instantly; the tests hold every number
against a real module.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from convlab.coverage import TRACE_LIMIT, Rows, inner, never_read, never_written
from convlab.data import get_dataset
from convlab.errors import ConfigError
from convlab.experiment import Experiment
from convlab.geometry import AxisWindows, axis_windows, hw, layer_call, unpool_axes
from convlab.layers import ShapeError, output_shape, resolved_in_channels, stage_output_shape
from convlab.stages import ConvConfig, ConvTranspose2dConfig, LayerConfig, PoolConfig
from convlab.upsampling import TransposedAxis, transposed_axes
from convlab.values import Pair, parse_pair

if TYPE_CHECKING:
    from rich.text import Text


# ----------------------------------------------------------------------------- text


def _n(value: int) -> str:
    return f"{value:,}"


def spans(rows: Rows | list[int], limit: int = 8) -> str:
    """``[0, 1, 2, 5, 9, 10]`` -> ``"0-2, 5, 9-10"``, shortened in the middle when long."""
    rows = rows if isinstance(rows, Rows) else Rows.of(rows)
    runs = list(itertools.islice(rows.runs(), limit + 1))
    if len(runs) > limit:
        runs = [*runs[: limit - 2], None, next(rows.runs(reverse=True))]
    return ", ".join("..." if r is None else str(r[0]) if r[1] - r[0] == 1 else f"{r[0]}-{r[1] - 1}" for r in runs)


# ----------------------------------------------------------------------------- explanation


@dataclass(frozen=True)
class Explanation:
    """Everything ``convlab explain`` says about one layer on one input shape."""

    module: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    formulas: list[str]
    facts: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: int = 0
    # Per image; for pooling, the comparisons are in the facts instead.
    multiply_adds: int = 0
    # Input rows and columns no window reads (for unpooling: output ones no value reaches);
    # None where they were too irregular to trace at this size.
    never_read: tuple[Rows | None, Rows | None] = (Rows(), Rows())

    def lines(self) -> list[tuple[str, str]]:
        """``(style, text)`` lines; the style is decoration only, the text says it all."""
        out = [("bold", self.module), ("", f"input {self.input_shape} -> output {self.output_shape}  (C, H, W)"), ("", "")]
        out += [("cyan", "  " + f) for f in self.formulas]
        out.append(("", ""))
        width = max(len(k) for k, _ in self.facts)
        out += [("", f"{k:<{width}}  {v}") for k, v in self.facts]
        if self.warnings or self.notes:
            out.append(("", ""))
        out += [("yellow", f"warning: {w}") for w in self.warnings]
        out += [("", f"note: {n}") for n in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def rich(self) -> list[Text]:
        from rich.text import Text

        return [Text(text, style=style) for style, text in self.lines()]


def explain(cfg: LayerConfig, input_shape: tuple[int, int, int]) -> Explanation:
    """Explain a Conv2d / MaxPool2d on a (C, H, W) input; a ShapeError where it cannot run."""
    out = output_shape(cfg, input_shape)
    channels, height, width = input_shape
    in_channels = resolved_in_channels(cfg, channels)
    axes = axis_windows(cfg, height, width)
    kh, kw = cfg.kernel_size
    taps = kh * kw
    facts: list[tuple[str, str]] = []

    span = f"{axes[0].arith.span}x{axes[1].arith.span}"
    if cfg.dilation != (1, 1):
        where = f"{taps} taps spread over {span} (dilation {hw(cfg.dilation)} skips {hw(tuple(d - 1 for d in cfg.dilation))} between taps)"
    else:
        where = f"a {kh}x{kw} window ({taps} values)"
    if isinstance(cfg, ConvConfig):
        per_group = in_channels // cfg.groups
        chans = f"{per_group} input channel{'s' if per_group > 1 else ''}"
        if cfg.groups > 1:
            chans += f" (groups={cfg.groups}: each output sees its group's {per_group} of {in_channels})"
        facts.append(("receptive field", f"each output reads {where} in {chans}: {_n(per_group * taps)} input values"))
        weights = cfg.out_channels * per_group * taps
        bias = cfg.out_channels if cfg.bias else 0
        parameters = weights + bias
        multiply_adds = out[0] * out[1] * out[2] * per_group * taps
        bias_text = f" + bias {cfg.out_channels}" if cfg.bias else " (no bias)"
        facts.append(
            ("parameters", f"{_n(weights + bias)} = weight {cfg.out_channels}x{per_group}x{kh}x{kw} ({_n(weights)}){bias_text}")
        )
        outputs = out[0] * out[1] * out[2]
        facts.append(
            ("multiply-adds", f"{_n(multiply_adds)} per image = {out[0]}x{out[1]}x{out[2]} outputs x {_n(per_group * taps)} each")
        )
    else:
        parameters = multiply_adds = 0
        outputs = out[0] * out[1] * out[2]
        if cfg.mode == "avg":
            facts.append(("receptive field", f"each output is the average of {where} in one channel"))
            facts.append(("parameters", "0 (pooling has no weights)"))
            facts.append(
                ("multiply-adds", f"0; additions: up to {taps - 1} per output and one division, "
                 f"{_n(outputs * (taps - 1))} per image")
            )
        else:
            facts.append(("receptive field", f"each output is the max of {where} in one channel"))
            facts.append(("parameters", "0 (pooling has no weights)"))
            facts.append(
                ("multiply-adds", f"0; comparisons: up to {taps - 1} per output, {_n(outputs * (taps - 1))} per image")
            )

    warnings: list[str] = []
    notes: list[str] = []
    unread = []
    missed = {ax.arith.axis: never_read(ax) for ax in axes}
    for ax, names in _axes_to_tell(axes):
        rows = missed[ax.arith.axis]
        if rows is None:
            unread.append(_not_traced(names, ax.arith.span, ax.arith.stride, ax.arith.size))
        elif rows:
            unread.append(f"{names.rows} {spans(rows)} ({len(rows)} of {ax.arith.size})")
        warnings += _tiling_warnings(cfg, ax, names)
        warnings += _gap_warnings(ax, names, rows)
        notes += _ceil_notes(ax, names)
        if ax.arith.same:
            before, after = ax.pad_before, ax.pad_after
            odd = " (PyTorch puts the odd one after)" if before != after else ""
            notes.append(
                f"padding='same' on {names.axis}: {ax.arith.dilation}*({ax.arith.kernel}-1) = {before + after} "
                f"padding, {before} before and {after} after{odd}"
            )
    facts.append(("never read", "; ".join(unread) if unread else "none: every input row and column is read"))
    return Explanation(
        module=layer_call(cfg, in_channels),
        input_shape=tuple(input_shape),
        output_shape=out,
        formulas=[ax.arith.formula() for ax in axes],
        facts=facts,
        warnings=warnings,
        notes=notes,
        parameters=parameters,
        multiply_adds=multiply_adds,
        never_read=(missed["H"], missed["W"]),
    )


@dataclass(frozen=True)
class AxisNames:
    axis: str  # "H", "W" or "H and W"
    row: str
    rows: str
    dim: str


_NAMES = {
    "H": AxisNames("H", "row", "rows", "height"),
    "W": AxisNames("W", "column", "columns", "width"),
    "HW": AxisNames("H and W", "row/column", "rows/columns", "height/width"),
}


def _axes_to_tell(axes: tuple[AxisWindows, AxisWindows]) -> list[tuple[AxisWindows, AxisNames]]:
    """Both axes, or one told for both when they are alike (a square input and layer)."""
    h, w = axes
    if dataclasses.replace(h.arith, axis="W") == w.arith and (h.pad_before, h.pad_after) == (w.pad_before, w.pad_after):
        return [(h, _NAMES["HW"])]
    return [(h, _NAMES["H"]), (w, _NAMES["W"])]


def _not_traced(names: AxisNames, span: int, stride: int, size: int) -> str:
    """What 'never read' says where the rows are too irregular to trace at this size."""
    return (
        f"{names.rows} not listed: windows spanning {span} with stride {stride} over {size} {names.rows} "
        f"would take tracing more than {_n(TRACE_LIMIT)} of them one by one"
    )


def _gap_warnings(ax: AxisWindows, names: AxisNames, missed: Rows | None) -> list[str]:
    """Rows skipped between the first and last read: stride larger than the window, or dilation gaps."""
    a = ax.arith
    gaps = inner(missed, a.size) if missed is not None else Rows()
    if not gaps:
        return []
    if a.stride > a.span:
        gap = a.stride - a.span
        why = f"stride {a.stride} is larger than the window ({a.span}): a gap of {gap} {names.row if gap == 1 else names.rows} between windows"
    else:
        why = f"dilation {a.dilation} leaves gaps between taps that no window fills"
    return [f"{why} on {names.axis}; {names.rows} {spans(gaps)} are never read"]


def _tiling_warnings(cfg: LayerConfig, ax: AxisWindows, names: AxisNames) -> list[str]:
    """The stride leaves part of the padded input after the last window (floor rounding)."""
    a = ax.arith
    n = a.padded - a.span
    if a.same or n < 0 or a.stride == 1 or n % a.stride == 0 or a.ceil_mode:
        return []
    rest = n % a.stride
    last_tap = ax.taps(ax.count - 1)[-1]
    tail = range(last_tap + 1, a.size)
    head = (
        f"stride {a.stride} does not tile the {names.dim} evenly: {a.size} + 2*{a.pad} - {a.span} = {n} "
        f"leaves {rest} after {n // a.stride} stride(s)"
    )
    if not tail:
        return [f"{head}; only padding is left over, every input {names.row} is read"]
    lost = f"{names.rows} {spans(Rows.of(tail))} are" if len(tail) > 1 else f"{names.row} {tail[0]} is"
    even = [s for s in (a.size - rest, a.size + a.stride - rest) if s + 2 * a.pad >= a.span]
    fix = f"; an input {names.dim} of {' or '.join(map(str, even))} would tile evenly"
    if isinstance(cfg, PoolConfig):
        ceil = dataclasses.replace(a, ceil_mode=True).out
        if ceil > a.out:
            fix += f", or --ceil keeps a last window over the edge ({ceil} outputs instead of {a.out})"
    return [f"{head}, so input {lost} never read{fix}"]


def _ceil_notes(ax: AxisWindows, names: AxisNames) -> list[str]:
    """ceil_mode's rule for the last window, spelled out where it changes anything."""
    a = ax.arith
    if not a.ceil_mode:
        return []
    n = a.padded - a.span
    floor_out = dataclasses.replace(a, ceil_mode=False).out
    ceil_out = -(-n // a.stride) + 1
    if ceil_out == floor_out:
        return [f"ceil_mode changes nothing on {names.axis}: the windows tile the padded {names.dim} exactly"]
    last = ceil_out - 1
    start = last * a.stride - a.pad
    rule = (
        f"(out-1)*stride = {last}*{a.stride} = {last * a.stride} {'<' if a.out == ceil_out else '>='} "
        f"in + padding = {a.size} + {a.pad}"
    )
    if a.out < ceil_out:
        return [
            f"ceil_mode on {names.axis}: rounding up would add a window starting at {names.row} {start}, past the "
            f"last input {names.row} ({a.size - 1}), reading only padding; PyTorch drops such a last window "
            f"({rule}), so there are {a.out} outputs, as with floor rounding"
        ]
    past = start + a.span - ax.limit
    reach = f"reaches {past} {names.row if past == 1 else names.rows} past the edge"
    if n < 0:
        return [
            f"ceil_mode on {names.axis}: the window spans {a.span} but the padded input has only {a.padded}; "
            f"floor rounding gives no output, ceil_mode keeps this one window (it {reach}) because {rule}"
        ]
    return [
        f"ceil_mode on {names.axis}: one more window than floor rounding ({ceil_out} outputs instead of {floor_out}); "
        f"the last starts at {names.row} {start} and {reach}; PyTorch keeps it because it starts inside the "
        f"input: {rule}"
    ]


# ----------------------------------------------------------------------------- MaxUnpool2d


def unpool_output_shape(
    cfg: PoolConfig, input_shape: tuple[int, int, int], output_size: Pair | None = None
) -> tuple[int, int, int]:
    """(C, H, W) in -> out for MaxUnpool2d, or a ShapeError exactly where PyTorch refuses."""
    channels, height, width = input_shape
    axes = unpool_axes(cfg, height, width, output_size)
    for a in axes:
        dim = _NAMES[a.axis].dim
        if a.output_size is not None and a.output_size not in a.accepted:
            raise ShapeError(
                f"output_size {a.output_size} for the {dim} is out of range: MaxUnpool2d of {a.axis}={a.size} "
                f"with kernel {a.kernel}, stride {a.stride}, padding {a.pad} gives {a.default}, and accepts "
                f"{a.accepted.start}..{a.accepted.stop - 1}; leave --output-size out or choose one in that range"
            )
        if a.out < 0:
            raise ShapeError(
                f"MaxUnpool2d of {a.axis}={a.size} gives {a.out} (negative): ({a.size} - 1)*{a.stride} - 2*{a.pad} + {a.kernel}; "
                "use less --padding"
            )
    return (channels, axes[0].out, axes[1].out)


def pooled_size(cfg: PoolConfig, height: int, width: int, channels: int = 1) -> tuple[int, int]:
    """What MaxPool2d(kernel_size, stride, padding) (no dilation, floor) makes of H x W."""
    plain = dataclasses.replace(cfg, dilation=(1, 1), ceil_mode=False)
    return output_shape(plain, (channels, height, width))[1:]


def explain_unpool(
    cfg: PoolConfig, input_shape: tuple[int, int, int], output_size: Pair | None = None, *, pooled_from: Pair | None = None
) -> Explanation:
    """Explain MaxUnpool2d, the inverse of the MaxPool2d ``cfg``, on a (C, H, W) input.

    ``pooled_from`` is the (H, W) the input was pooled from, when known: the note then says
    which ``output_size`` gets exactly that back.
    """
    out = unpool_output_shape(cfg, input_shape, output_size)
    channels, height, width = input_shape
    axes = unpool_axes(cfg, height, width, output_size)
    kh, kw = cfg.kernel_size
    values = channels * height * width
    facts = [
        (
            "receptive field",
            f"each output is one input value or 0: every input value goes to the position inside its {kh}x{kw} "
            "window that MaxPool2d's indices recorded",
        ),
        ("parameters", "0"),
        ("multiply-adds", f"0; copies {_n(values)} values into {_n(out[0] * out[1] * out[2])} outputs, the rest are 0"),
    ]
    warnings, notes, unwritten = [], [], []
    alike = dataclasses.replace(axes[0], axis="W") == axes[1]
    missed = [never_written(a) for a in axes]
    told = [(axes[0], _NAMES["HW"], missed[0])] if alike else [(axes[0], _NAMES["H"], missed[0]), (axes[1], _NAMES["W"], missed[1])]
    for a, names, rows in told:
        if rows is None:
            unwritten.append(_not_traced(names, a.kernel, a.stride, a.out))
        elif rows:
            unwritten.append(f"{names.rows} {spans(rows)} ({len(rows)} of {a.out})")
        if a.stride > 1:
            notes.append(
                f"on {names.axis}, MaxPool2d(kernel {a.kernel}, stride {a.stride}, padding {a.pad}) maps any input "
                f"{names.dim} of {a.default}..{a.default + a.stride - 1} to {a.size}; MaxUnpool2d cannot tell which, "
                f"so it gives {a.default} unless output_size says otherwise "
                f"(PyTorch accepts {a.accepted.start}..{a.accepted.stop - 1})"
            )
    facts.append(
        ("never written", "; ".join(unwritten) + " (always 0)" if unwritten else "none: every output row and column can receive a value")
    )
    if pooled_from is not None and output_size is None and (out[1], out[2]) != tuple(pooled_from):
        h, w = pooled_from
        warnings.append(
            f"this input is what MaxPool2d makes of {h}x{w}, but unpooling gives {out[1]}x{out[2]}; pass "
            f"output_size=({h}, {w}) (--output-size {h}x{w}) to get {h}x{w} back"
        )
    return Explanation(
        module=layer_call(cfg, unpool=True),
        input_shape=tuple(input_shape),
        output_shape=out,
        formulas=[a.formula() for a in axes],
        facts=facts,
        warnings=warnings,
        notes=notes,
        never_read=(missed[0], missed[1]),
    )


# ----------------------------------------------------------------------------- ConvTranspose2d


def explain_convtranspose(cfg: ConvTranspose2dConfig, input_shape: tuple[int, int, int], *, conv_from: Pair | None = None) -> Explanation:
    """Explain a ConvTranspose2d on a (C, H, W) input: its size, the Conv2d whose gradient it is,
    the direct convolution it equals, what each output reads, its costs, and which output_padding
    gives which size. ``conv_from``: the (H, W) the input was convolved from, when known: a warning
    says which output_padding gets it back."""
    out = stage_output_shape(cfg, input_shape)
    channels, height, width = input_shape
    axes = transposed_axes(cfg, height, width)
    kh, kw = cfg.kernel_size
    per_group = cfg.out_channels // cfg.groups
    weights = cfg.in_channels * per_group * kh * kw
    bias = cfg.out_channels if cfg.bias else 0
    multiply_adds = channels * height * width * per_group * kh * kw
    conv = ConvConfig(cfg.out_channels, cfg.in_channels, cfg.kernel_size, cfg.stride, cfg.padding, dilation=cfg.dilation,
                      groups=cfg.groups, bias=cfg.bias)
    patch = f"{axes[0].span}x{axes[1].span}"
    facts = [
        ("gradient of", (
            f"{layer_call(conv, cfg.out_channels)}, which takes {_conv_inputs(cfg.out_channels, axes)} to "
            f"{cfg.in_channels}x{height}x{width}: with the same arguments and weight ({cfg.in_channels}, {per_group}, {kh}, {kw}), "
            f"ConvTranspose2d computes that convolution's gradient with respect to its input: each input value times its "
            f"kernel is added into a {patch} patch of the output, the patches {hw(cfg.stride)} apart (overlaps summed)"
            f"{_cropped(cfg)}"
        )),
        ("as a convolution", _direct(cfg, axes)),
        ("receptive field", _transposed_reads(cfg, axes)),
        ("parameters", f"{_n(weights + bias)} = weight {cfg.in_channels}x{per_group}x{kh}x{kw} ({_n(weights)})"
                       + (f" + bias {cfg.out_channels}" if cfg.bias else " (no bias)")),
        ("multiply-adds", f"{_n(multiply_adds)} per image = {channels}x{height}x{width} inputs x {_n(per_group * kh * kw)} each "
                          "(every tap of every stamp, also those the padding crops: what torch.utils.flop_counter counts)"),
        ("output_padding", "; ".join(dict.fromkeys(_output_padding(a, names) for a, names in _transposed_axes_to_tell(axes)))),
    ]
    warnings, notes = [], []
    if conv_from is not None and (out[1], out[2]) != tuple(conv_from):
        fixed = [want - (a.out - a.output_padding) for a, want in zip(axes, conv_from)]
        h, w = conv_from
        if all(0 <= f < max(a.stride, a.dilation) for f, a in zip(fixed, axes)):
            warnings.append(
                f"this input is what that Conv2d makes of {h}x{w}, but ConvTranspose2d gives {out[1]}x{out[2]}; pass "
                f"output_padding={_pair_text(fixed)} "
                f"(--output-padding {hw(tuple(fixed))}) to get {h}x{w} back"
            )
    for a, names in _transposed_axes_to_tell(axes):
        low, high = a.taps_read
        if 0 < low < high:
            notes.append(
                f"kernel {a.kernel} is not a multiple of stride {a.stride} on {names.axis}: neighbouring outputs read "
                f"{low} and {high} input {names.rows} by turns, the uneven overlap behind the checkerboard patterns "
                "transposed convolutions are known for (a kernel the stride divides, or Upsample then Conv2d, avoids it)"
            )
        if low == 0:
            warnings.append(
                f"kernel {a.kernel} (dilation {a.dilation}) leaves gaps with stride {a.stride} on {names.axis}: some output "
                f"{names.rows} read no input value at all, only the bias"
            )
        if a.direct_pad < 0:
            notes.append(
                f"padding {a.pad} is more than dilation*(kernel-1) = {a.span - 1} on {names.axis}: the direct convolution "
                f"crops {-a.direct_pad} from each side of the stretched input instead of padding it"
            )
    return Explanation(
        module=layer_call(cfg),
        input_shape=tuple(input_shape),
        output_shape=out,
        formulas=[a.formula() for a in axes],
        facts=facts,
        warnings=warnings,
        notes=list(dict.fromkeys(notes)),
        parameters=weights + bias,
        multiply_adds=multiply_adds,
        never_read=(Rows(), Rows()),
    )


def _conv_inputs(channels: int, axes: tuple[TransposedAxis, TransposedAxis]) -> str:
    """The inputs the Conv2d maps to this one's input: ``3x31x31 or 3x32x32``."""
    h, w = (a.conv_sizes for a in axes)
    if h == w and len(h) <= 4:
        return " or ".join(f"{channels}x{n}x{n}" for n in h)
    one = [f"{r.start}" if len(r) == 1 else f"({r.start}..{r.stop - 1})" for r in (h, w)]
    return f"{channels}x{one[0]}x{one[1]}"


def _signed(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _pair_text(values: list[int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"({values[0]}, {values[1]})"


def _cropped(cfg: ConvTranspose2dConfig) -> str:
    return "" if cfg.padding == (0, 0) else f", then padding {hw(cfg.padding)} cropped from each side"


def _transposed_axes_to_tell(axes: tuple[TransposedAxis, TransposedAxis]) -> list[tuple[TransposedAxis, AxisNames]]:
    h, w = axes
    if dataclasses.replace(h, axis="W") == w:
        return [(h, _NAMES["HW"])]
    return [(h, _NAMES["H"]), (w, _NAMES["W"])]


def _direct(cfg: ConvTranspose2dConfig, axes: tuple[TransposedAxis, TransposedAxis]) -> str:
    told = _transposed_axes_to_tell(axes)
    parts = []
    for a, names in told:
        where = "" if len(told) == 1 else f"{names.axis}: "
        zeros = f"{a.stride - 1} zero(s) between input values" if a.stride > 1 else "no zeros between input values"
        after = f" (+{a.output_padding} after)" if a.output_padding else ""
        parts.append(
            f"{where}{zeros} ({a.size} -> {a.stretched}), padding {a.dilation}*({a.kernel}-1) - {a.pad} = {a.direct_pad} on "
            f"each side{after}, then {a.stretched} + 2*{_signed(a.direct_pad)}{f' + {a.output_padding}' if a.output_padding else ''} "
            f"- {a.span} + 1 = {a.out}"
        )
    flipped = "weight.transpose(0, 1).flip(2, 3)" if cfg.groups == 1 else "the weight's in and out channels swapped per group, flipped"
    return "; ".join(parts) + f": Conv2d with stride 1, dilation {hw(cfg.dilation)} and the kernel flipped ({flipped})"


def _transposed_reads(cfg: ConvTranspose2dConfig, axes: tuple[TransposedAxis, TransposedAxis]) -> str:
    reads = [a.taps_read for a in axes]
    most = f"{reads[0][1]}x{reads[1][1]}"
    per_group = cfg.in_channels // cfg.groups
    chans = f"in {per_group} input channel{'s' if per_group > 1 else ''}"
    if reads[0][0] == reads[0][1] and reads[1][0] == reads[1][1]:
        return f"each output reads {most} input positions {chans} (its kernel's taps that land on input values)"
    fewest = f"{reads[0][0]}x{reads[1][0]}"
    return (f"each output reads {fewest} to {most} input positions {chans}: where its flipped kernel's taps land on input "
            "values rather than on the zeros between them")


def _output_padding(a: TransposedAxis, names: AxisNames) -> str:
    where = "" if names.axis == "H and W" else f"{names.axis}: "
    base = a.out - a.output_padding
    sizes = a.conv_sizes
    if len(sizes) == 1:
        return f"{where}the Conv2d maps only {sizes.start} to {a.size}, which output_padding 0 gives"
    if len(sizes) > 4:
        choices = f"{sizes.start - base}..{sizes.stop - 1 - base} gives {sizes.start}..{sizes.stop - 1}"
    else:
        choices = ", ".join(f"{n - base} gives {n}" for n in sizes)
    return f"{where}the Conv2d maps any of {sizes.start}..{sizes.stop - 1} to {a.size}; output_padding {choices}"


def convtranspose_input(cfg: ConvTranspose2dConfig, data_shape: tuple[int, int, int], size: str | None) -> tuple[tuple[int, int, int], Pair | None]:
    """``convlab explain convtranspose``'s input: ``--size``, or what the Conv2d with the same
    arguments makes of the dataset's images (and their size, to get back)."""
    if size is not None:
        return (cfg.in_channels, *parse_size(size)), None
    _, h, w = data_shape
    conv = ConvConfig(cfg.in_channels, cfg.in_channels, cfg.kernel_size, cfg.stride, cfg.padding, dilation=cfg.dilation)
    try:
        _, ch, cw = output_shape(conv, (cfg.in_channels, h, w))
    except ShapeError as exc:
        raise ConfigError(f"the Conv2d with these arguments cannot take a {h}x{w} image ({exc}); give the input's size with --size") from None
    return (cfg.in_channels, ch, cw), (h, w)


# ----------------------------------------------------------------------------- inputs


# PyTorch's sizes are 32-bit, as config holds every layer setting to.
MAX_SIZE = 2**31 - 1


def parse_size(value: str, name: str = "--size", minimum: int = 1) -> Pair:
    size = parse_pair(value, name)
    if isinstance(size, str) or min(size) < minimum:
        least = "at least 1x1" if minimum == 1 else f"{minimum} or more"
        raise ConfigError(f"{name} must be {least}, got {value}")
    if max(size) > MAX_SIZE:
        raise ConfigError(f"{name}: {max(size)} is far too large; PyTorch takes at most {MAX_SIZE}")
    return size


def input_shape(exp: Experiment, size: str | None = None, channels: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) to explain: ``--size``/``--channels`` where given, else the experiment's dataset images."""
    c, h, w = get_dataset(exp.data.dataset).shape(exp.data)
    if isinstance(exp.layer, ConvConfig) and exp.layer.in_channels is not None:
        c = exp.layer.in_channels
    if channels is not None:
        c = channels
    if size is not None:
        h, w = parse_size(size)
    return (c, h, w)


def explain_unpool_input(exp: Experiment, size: str | None, channels: int | None, output_size: str | None) -> Explanation:
    """``convlab explain unpool``: without ``size``, the input is what MaxPool2d makes of the dataset's images."""
    cfg = exp.layer
    c, h, w = input_shape(exp, None, channels)
    wanted = None
    if output_size is not None:
        wanted = parse_size(output_size, "--output-size", minimum=0)
    if size is not None:
        return explain_unpool(cfg, (c, *parse_size(size)), wanted)
    return explain_unpool(cfg, (c, *pooled_size(cfg, h, w, c)), wanted, pooled_from=(h, w))
