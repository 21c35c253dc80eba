"""ConvTranspose2d explained: its size, the Conv2d whose gradient it is, the direct convolution it
equals, what each output reads, and which output_padding gives which size."""

from __future__ import annotations

import dataclasses

from convlab.coverage import Rows
from convlab.errors import ConfigError
from convlab.explain.explanation import AxisNames, Explanation, axes_to_tell, with_commas
from convlab.explain.inputs import parse_size
from convlab.geometry import hw, layer_call
from convlab.layers import ShapeError, output_shape, stage_output_shape
from convlab.stages import ConvConfig, ConvTranspose2dConfig
from convlab.upsampling import TransposedAxis, transposed_axes
from convlab.values import Pair


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
        ("parameters", f"{with_commas(weights + bias)} = weight {cfg.in_channels}x{per_group}x{kh}x{kw} ({with_commas(weights)})"
                       + (f" + bias {cfg.out_channels}" if cfg.bias else " (no bias)")),
        ("multiply-adds", f"{with_commas(multiply_adds)} per image = {channels}x{height}x{width} inputs x {with_commas(per_group * kh * kw)} each "
                          "(every tap of every stamp, also those the padding crops: what torch.utils.flop_counter counts)"),
        ("output_padding", "; ".join(dict.fromkeys(_output_padding(a, names) for a, names in _axes_to_tell(axes)))),
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
    for a, names in _axes_to_tell(axes):
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


def _axes_to_tell(axes: tuple[TransposedAxis, TransposedAxis]) -> list[tuple[TransposedAxis, AxisNames]]:
    h, w = axes
    return axes_to_tell(h, w, dataclasses.replace(h, axis="W") == w)


def _direct(cfg: ConvTranspose2dConfig, axes: tuple[TransposedAxis, TransposedAxis]) -> str:
    told = _axes_to_tell(axes)
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
