"""``convlab.interact("conv")``: one layer's arithmetic with sliders, redrawn as they move.

Sliders for kernel_size, stride, padding and dilation (and ceil_mode for a pool) are core
ipywidgets (no JavaScript of convlab's own: custom widgets are what broke in Colab and
JupyterLab); each change resolves the layer as ``convlab explain`` does and redraws the
arithmetic (its text) and the channels view of one image of the dataset through the real
torch module. Without ipywidgets (``pip install convlab[notebook]``) the same call prints the
one static explanation and says what to install.
"""

from __future__ import annotations

import io
from typing import Any

from convlab.config import overrides, resolve
from convlab.errors import ConvlabError
from convlab.notebook.api import takes
from convlab.notebook.results import Text

# (keyword, lowest, highest) of each slider; a value the keywords give starts it, else the default.
SLIDERS = {
    "conv": (("kernel_size", 1, 7), ("stride", 1, 4), ("padding", 0, 3), ("dilation", 1, 3)),
    "pool": (("kernel_size", 1, 7), ("stride", 1, 7), ("padding", 0, 3), ("dilation", 1, 3)),
}
INSTALL = "pip install 'convlab[notebook]'  (or: pip install ipywidgets)"


@takes(["out_channels", "groups", "bias", "init", "padding_mode", "mode", "kernel_size", "stride", "padding", "dilation",
        "ceil_mode", "dataset", "split", "data_dir", "download", "image_size", "grayscale", "seed", "scale", "zoom", "config"])
def interact(command: str = "conv", *, image: int = 0, **settings: Any) -> Any:
    """Sliders for a ``Conv2d`` (``"conv"``) or ``MaxPool2d`` (``"pool"``): kernel_size, stride, padding,
    dilation (and ceil_mode for pool). Each change redraws the output-size arithmetic and the channels
    view of image number ``image`` of the dataset through the real layer (seeded as a run's). The other
    keywords fix the rest of the layer and the data. Returns the widget (it shows itself); without
    ipywidgets installed, prints the static explanation, says what to install and returns None."""
    if command not in SLIDERS:
        raise ConvlabError(f"unknown interact {command!r}; choose from {', '.join(SLIDERS)}")
    config = settings.pop("config", None)
    try:
        import ipywidgets as widgets
    except ImportError:
        print(_explanation(command, settings, config))
        print(f"\nThis is the static explanation: for sliders that redraw it, install ipywidgets: {INSTALL}")
        return None
    layer = Layer(command, settings, config, image)
    sliders: dict[str, Any] = {}
    for key, low, high in SLIDERS[command]:
        sliders[key] = widgets.IntSlider(value=min(max(layer.start[key], low), high), min=low, max=high, description=key,
                                         continuous_update=False)
    if command == "pool":
        sliders["ceil_mode"] = widgets.Checkbox(value=layer.start["ceil_mode"], description="ceil_mode")
    text = widgets.HTML()
    picture = widgets.Image(format="png")

    def redraw(change: Any = None) -> None:
        arithmetic, png = layer.draw({key: w.value for key, w in sliders.items()})
        text.value = f"<pre>{_escape(arithmetic)}</pre>"
        if png is not None:
            picture.value = png
        picture.layout.visibility = "visible" if png is not None else "hidden"

    for w in sliders.values():
        w.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox(list(sliders.values())[:3]), widgets.HBox(list(sliders.values())[3:]), text, picture])
    box.sliders, box.arithmetic, box.picture = sliders, text, picture  # for whoever drives it from code
    return box


class Layer:
    """One layer and one image: the arithmetic and the channels view for any slider values."""

    def __init__(self, command: str, settings: dict[str, Any], config: Any, image: int):
        from convlab.geometry import pool_stride
        from convlab.stages import PoolConfig

        exp = resolve(command, overrides(command, settings), config)
        cfg = exp.layer
        self.command, self.config, self.image = command, config, image
        stride = pool_stride(cfg) if isinstance(cfg, PoolConfig) else cfg.stride
        padding = cfg.padding if isinstance(cfg.padding, tuple) else (0, 0)  # 'same' / 'valid' have no slider value
        # Where the sliders start: the layer the keywords give (the height's value of a pair).
        self.start = {"kernel_size": cfg.kernel_size[0], "stride": stride[0], "padding": padding[0], "dilation": cfg.dilation[0],
                      "ceil_mode": bool(getattr(cfg, "ceil_mode", False))}
        self.fixed = {k: v for k, v in settings.items() if k not in self.start}
        self.x = _one_image(exp, image)

    def draw(self, values: dict[str, Any]) -> tuple[str, bytes | None]:
        """The arithmetic as ``convlab explain`` prints it, and the channels view as PNG (None where the layer cannot run)."""
        import torch

        from convlab.explain.windows import explain
        from convlab.pictures import channel_view, to_pixels
        from convlab.planning import plan

        try:
            exp = resolve(self.command, overrides(self.command, {**self.fixed, **values}), self.config)
            text = explain(exp.layer, tuple(self.x.shape[1:])).text()
            module = plan(exp).module
            with torch.inference_mode():
                y = module(self.x)
        except ConvlabError as exc:
            return f"{type(exc).__name__}: {exc}", None
        view = to_pixels(channel_view(y, 1, exp.views.scale, exp.views.zoom))[0].permute(1, 2, 0).numpy()
        return f"{text}\n\nbelow: image {self.image}'s output, one grey tile per channel ({exp.views.scale} scale)", _png(view)


def _one_image(exp: Any, index: int) -> Any:
    from convlab import data as datasets

    images = datasets.load(exp.data, exp.run.seed)
    if not 0 <= index < len(images):
        raise ConvlabError(f"image={index}: {images.name}/{images.split} has images 0 to {len(images) - 1}")
    return images.batch(index, index + 1).float().div_(255)


def _explanation(command: str, settings: dict[str, Any], config: Any) -> Text:
    from convlab.explain.inputs import input_shape
    from convlab.explain.windows import explain

    exp = resolve(command, overrides(command, settings), config)
    return Text(explain(exp.layer, input_shape(exp)).text())


def _png(pixels: Any) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _escape(text: str) -> str:
    import html

    return html.escape(text)
