"""MaxUnpool2d explained: where each pooled value goes back, the output rows no value reaches,
and which output_size gets the pooled input's size back."""

from __future__ import annotations

import dataclasses

from convlab.coverage import never_written
from convlab.experiment import Experiment
from convlab.explain.explanation import AXIS_NAMES, Explanation, axes_to_tell, not_traced, spans, with_commas
from convlab.explain.inputs import input_shape, parse_size
from convlab.geometry import layer_call, unpool_axes
from convlab.layers import ShapeError, output_shape
from convlab.stages import PoolConfig
from convlab.values import Pair


def unpool_output_shape(
    cfg: PoolConfig, input_shape: tuple[int, int, int], output_size: Pair | None = None
) -> tuple[int, int, int]:
    """(C, H, W) in -> out for MaxUnpool2d, or a ShapeError exactly where PyTorch refuses."""
    channels, height, width = input_shape
    axes = unpool_axes(cfg, height, width, output_size)
    for a in axes:
        dim = AXIS_NAMES[a.axis].dim
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
        ("multiply-adds", f"0; copies {with_commas(values)} values into {with_commas(out[0] * out[1] * out[2])} outputs, the rest are 0"),
    ]
    warnings, notes, unwritten = [], [], []
    missed = [never_written(a) for a in axes]
    for (a, names), rows in zip(axes_to_tell(*axes, dataclasses.replace(axes[0], axis="W") == axes[1]), missed):
        if rows is None:
            unwritten.append(not_traced(names, a.kernel, a.stride, a.out))
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
