"""``convlab.explain`` and ``convlab.demo`` in a notebook: the arithmetic worked out and the 5x5 worked
examples, as the command line prints them (:mod:`convlab.commands` makes the text for both), returned
as a :class:`~convlab.notebook.results.Text`. Their keywords are the command line's options, declared
in :mod:`convlab.notebook.api`. No data is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from convlab.config import overrides, resolve
from convlab.errors import ConfigError
from convlab.notebook.api import CONV, POOL, TRANSPOSED, split_settings, takes
from convlab.notebook.results import Text

if TYPE_CHECKING:
    from torch import nn


def _size(size: Any) -> str | None:
    if size is None or isinstance(size, str):
        return size
    if isinstance(size, int):
        return f"{size}x{size}"
    return "x".join(str(v) for v in size)


def _typed(value: Any) -> str | None:
    """A pair as the command line's option is typed: ``3``, ``(3, 5)`` or ``"3x5"`` -> ``"3"``, ``"3x5"``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return value  # the parser's own error names what it got


def _transposed_only(command: str, settings: Mapping[str, Any]) -> None:
    given = [key for key in ("output_padding", "case") if settings.get(key) is not None]
    if given:
        raise ConfigError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} a transposed convolution's; "
                          f"{command} takes neither (convtranspose does)")


@takes([*CONV, *POOL, "pretrained", "upto", "output_padding", "case", "dataset", "image_size", "grayscale", "data_dir", "device",
        "config"])
def explain(command: str, *layers: str, model: nn.Module | None = None, size: int | tuple[int, int] | str | None = None,
            channels: int | None = None, output_size: int | tuple[int, int] | str | None = None, **settings: Any) -> Text:
    """The arithmetic, as ``convlab explain conv|pool|unpool|convtranspose|stack`` prints it: the output-size
    formula with the numbers, receptive field, parameters, multiply-adds, rows never read; for a stack (its
    ``layers``, or ``model``: your ``nn.Module``, run once on blank images) the table of its stages; for
    convtranspose (``ConvTranspose2d``, or a conv_arithmetic ``case``) the Conv2d whose gradient it is and the
    direct convolution it equals. ``size`` and ``channels`` set the input (default: the dataset's images; for
    convtranspose, what Conv2d with the same arguments makes of them). No data is read."""
    from convlab import commands
    from convlab.explain.inputs import input_shape
    from convlab.explain.unpooling import explain_unpool_input
    from convlab.explain.windows import explain as explanation

    settings, config, _, _ = split_settings(settings)
    size = _size(size)
    if command == "convtranspose":
        others = [key for key, value in settings.items() if value is not None and key not in TRANSPOSED]
        if config is not None or others:
            raise ConfigError(f"explain convtranspose takes {', '.join(TRANSPOSED)}, size and channels; leave out "
                              f"{', '.join([*others, *(['config'] if config is not None else [])])}")
        layer = {key: settings.get(key) if key in ("out_channels", "groups", "bias") else _typed(settings.get(key))
                 for key in TRANSPOSED if key != "case"}
        _, _, explained = commands.convtranspose_explanation(layer={"in_channels": channels, **layer}, case=settings.get("case"),
                                                             size=size)
        return Text(explained.text())
    _transposed_only(f"explain {command}", settings)
    if command == "stack":
        if model is not None:
            if layers:
                raise ConfigError("give the layers or model=, not both")
            from convlab import hooks, modelrun

            exp = resolve("stack", overrides("stack", settings), config, model=True)
            shape = commands.stack_input_shape(exp, size=size, channels=channels)
            return Text(hooks.trace(model, shape, modelrun.model_device(exp.run.device, model)).text())
        from convlab.stack import explain_stack

        exp = resolve("stack", overrides("stack", {**settings, "layers": layers}), config)
        return Text(explain_stack(exp.stages, commands.stack_input_shape(exp, size=size, channels=channels)).text())
    if command not in ("conv", "pool", "unpool"):
        raise ConfigError(f"unknown explain {command!r}; choose from conv, pool, unpool, convtranspose, stack")
    kind = "pool" if command == "unpool" else command
    found = overrides(kind, settings)
    if command == "conv" and channels is not None:
        found["conv"]["in_channels"] = channels  # the input's channels are the layer's in_channels
    exp = resolve(kind, found, config)
    if command == "unpool":
        return Text(explain_unpool_input(exp, size, channels, _size(output_size)).text())
    return Text(explanation(exp.layer, input_shape(exp, size, channels)).text())


@takes(["kernel_size", "stride", "padding", "dilation", "ceil_mode", "output_padding", "case"])
def demo(command: str, *, input_matrix: str | Sequence[Sequence[float]] | None = None,
         weight: str | Sequence[Sequence[float]] | None = None, cell: str | tuple[int, int] | None = None,
         **layer: Any) -> Text:
    """The 5x5 worked examples by hand, as ``convlab demo pool|conv|convtranspose``: every window with its
    cells and result (for convtranspose: each input value's stamp of the kernel, and the zero-inserted input
    convolved with the flipped kernel). ``input_matrix`` (and for conv and convtranspose ``weight``): your own,
    ``[[1, 2, 0], [3, 2, 4]]`` or ``"1 2 0; 3 2 4"``; ``cell``: the output cell whose multiply-adds are shown,
    ``(row, column)``; ``case``: one of conv_arithmetic's transposed animations, its layer and input size."""
    from convlab import commands

    matrix = input_matrix if input_matrix is None or isinstance(input_matrix, str) else str([list(r) for r in input_matrix])
    kernel = weight if weight is None or isinstance(weight, str) else str([list(r) for r in weight])
    at = cell if cell is None or isinstance(cell, str) else ",".join(map(str, cell))
    if command == "convtranspose":
        if layer.get("ceil_mode") is not None:
            raise ConfigError("ceil_mode is a pool's; demo convtranspose takes kernel_size, stride, padding, output_padding, "
                              "dilation or case")
        geometry = {key: _typed(layer.get(key)) for key in ("kernel_size", "stride", "padding", "output_padding", "dilation")}
        lines = commands.demo_convtranspose_lines(layer=geometry, case=layer.get("case"), input_matrix=matrix, weight=kernel,
                                                  cell=at)
        return Text("\n".join(line.plain for line in lines))
    _transposed_only(f"demo {command}", layer)
    layer = {key: value for key, value in layer.items() if key not in ("output_padding", "case")}
    if command == "pool":
        lines = commands.demo_pool_lines(layer=overrides("pool", layer)["pool"], input_matrix=matrix)
    elif command == "conv":
        if "ceil_mode" in layer:
            raise ConfigError("ceil_mode is a pool's; demo conv takes kernel_size, stride, padding and dilation")
        lines = commands.demo_conv_lines(layer=overrides("conv", layer)["conv"], input_matrix=matrix, weight=kernel, cell=at)
    else:
        raise ConfigError(f"unknown demo {command!r}; choose from pool, conv, convtranspose")
    return Text("\n".join(line.plain for line in lines))
