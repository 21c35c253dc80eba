"""Conv2d, MaxPool2d and AvgPool2d explained: windows sliding over the input, what each reads and
costs, the rows no window reads, and why (the stride, the dilation, ceil_mode)."""

from __future__ import annotations

import dataclasses

from convlab.coverage import Rows, inner, never_read
from convlab.explain.explanation import AxisNames, Explanation, axes_to_tell, not_traced, spans, with_commas
from convlab.geometry import AxisWindows, axis_windows, hw, layer_call
from convlab.layers import output_shape, resolved_in_channels
from convlab.stages import ConvConfig, LayerConfig, PoolConfig


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
        facts.append(("receptive field", f"each output reads {where} in {chans}: {with_commas(per_group * taps)} input values"))
        weights = cfg.out_channels * per_group * taps
        bias = cfg.out_channels if cfg.bias else 0
        parameters = weights + bias
        multiply_adds = out[0] * out[1] * out[2] * per_group * taps
        bias_text = f" + bias {cfg.out_channels}" if cfg.bias else " (no bias)"
        facts.append(
            ("parameters", f"{with_commas(weights + bias)} = weight {cfg.out_channels}x{per_group}x{kh}x{kw} ({with_commas(weights)}){bias_text}")
        )
        outputs = out[0] * out[1] * out[2]
        facts.append(
            ("multiply-adds", f"{with_commas(multiply_adds)} per image = {out[0]}x{out[1]}x{out[2]} outputs x {with_commas(per_group * taps)} each")
        )
    else:
        parameters = multiply_adds = 0
        outputs = out[0] * out[1] * out[2]
        if cfg.mode == "avg":
            facts.append(("receptive field", f"each output is the average of {where} in one channel"))
            facts.append(("parameters", "0 (pooling has no weights)"))
            facts.append(
                ("multiply-adds", f"0; additions: up to {taps - 1} per output and one division, "
                 f"{with_commas(outputs * (taps - 1))} per image")
            )
        else:
            facts.append(("receptive field", f"each output is the max of {where} in one channel"))
            facts.append(("parameters", "0 (pooling has no weights)"))
            facts.append(
                ("multiply-adds", f"0; comparisons: up to {taps - 1} per output, {with_commas(outputs * (taps - 1))} per image")
            )

    warnings: list[str] = []
    notes: list[str] = []
    unread = []
    missed = {ax.arith.axis: never_read(ax) for ax in axes}
    h, w = axes
    alike = dataclasses.replace(h.arith, axis="W") == w.arith and (h.pad_before, h.pad_after) == (w.pad_before, w.pad_after)
    for ax, names in axes_to_tell(h, w, alike):
        rows = missed[ax.arith.axis]
        if rows is None:
            unread.append(not_traced(names, ax.arith.span, ax.arith.stride, ax.arith.size))
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
