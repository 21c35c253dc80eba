"""What a training run shows of its model besides the numbers, side by side rather than by the
step slider: at each snapshot, for every conv stage whose kernels are shown (a Conv2d's or a ConvTranspose2d's), one picture of its
kernels at step 0 | now | what training has added (now minus step 0), all on one fixed range per
stage (so change over time is not renormalised away; early layers' initial noise hides it
otherwise), kernels wrapped in rows; and every stage's view of one fixed probe batch beside the
same view at step 0. Once, the model's graph for TensorBoard's Graphs tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convlab.modules import call_text, torch_name
from convlab.writer import GraphNode

# A snapshot's kernel picture is drawn again at every snapshot: auto zoom keeps each of its three
# panels within this many pixels (a deep layer's 64x32 kernels of 5x5 at the stack's zoom would be
# 8 MP, 0.3 s a snapshot).
SNAPSHOT_KERNEL_PIXELS = 1 << 19
# Kernels of 3 input channels (RGB tiles) or 1 (grey) are wrapped in rows of this many, each tile
# about KERNEL_TILE pixels (three panels fit a TensorBoard card at actual size): 32 of them made one 1986x64 strip.
KERNELS_PER_ROW = 8
KERNEL_TILE = 30

if TYPE_CHECKING:
    import numpy as np
    import torch

    from convlab.pipeline import NonFinite
    from convlab.planning import Plan
    from convlab.writer import RunWriter


class Snapshots:
    """Kernels and the probe batch's views, logged at the steps asked, beside step 0's."""

    def __init__(self, p: Plan, writer: RunWriter, eval_x: torch.Tensor, eval_y: torch.Tensor, device: str,
                 watch: NonFinite | None = None):
        from convlab.views import selected_views

        self.plan, self.writer, self.watch = p, writer, watch
        views = p.exp.views
        self.probe = eval_x[: views.images].to(device).float().div_(255)
        self.probe_labels = eval_y[: views.images]
        # Every stage whose kernels view is logged: a Conv2d's, a ConvTranspose2d's (views.VIEWS["kernels"].kinds).
        self.kernels = [s for s in p.stages if any(v.name == "kernels" for v in selected_views(p.exp, s.cfg, s.output_shape))]
        self.limits: dict[str, float] = {}
        self.initial: dict[str, torch.Tensor] = {}
        self.beside = BesideStepZero(writer, keep={p.input_tag})

    def log(self, step: int, classes: tuple[str, ...]) -> None:
        self.log_views(step, classes)
        self.log_kernels(step)

    def log_views(self, step: int, classes: tuple[str, ...]) -> None:
        """Every stage's view of the probe images, beside its view at step 0."""
        from convlab import pipeline

        p = self.plan
        modules = [s.module for s in p.stages]
        for m in modules:
            m.eval()
        outputs = pipeline.forward(modules, p.model_input(self.probe))
        pipeline.log_step(self.beside, p, self.probe, outputs, step, labels=self.probe_labels, classes=classes)
        if self.watch is not None:
            self.watch.check(self.writer, p, outputs, step)

    def log_kernels(self, step: int) -> None:
        """Each conv's kernels at step 0 | now | what training has added, on its fixed range."""
        from convlab.pictures import side_by_side

        p = self.plan
        for s in self.kernels:
            tag = f"{s.prefix}/kernels"
            weight = s.module.weight.detach()
            if tag not in self.limits:  # one range per stage, from the first snapshot
                self.limits[tag] = float(weight.abs().max()) or 1.0
                self.initial[tag] = weight.clone()
            panels = kernel_panels(self.initial[tag], weight, self.limits[tag], p.exp.views.zoom, step)
            self.writer.image(tag, side_by_side(panels), step)


def kernel_panels(initial: torch.Tensor, now: torch.Tensor, limit: float, zoom: int | None, step: int) -> list[tuple[str, Any]]:
    """step 0 | step N | the change, each a :func:`kernel_view` on the fixed range ``limit``."""
    from convlab.pictures import kernel_view

    zoom = zoom or kernel_zoom(tuple(now.shape))
    wrap = KERNELS_PER_ROW

    def view(weight: torch.Tensor) -> torch.Tensor:
        return kernel_view(weight, zoom=zoom, limit=limit, wrap=wrap)

    return [("step 0", view(initial)), (f"step {step}", view(now)), ("change (now - step 0)", view(now - initial))]


def kernel_zoom(shape: tuple[int, ...]) -> int:
    """Kernel tiles of about KERNEL_TILE pixels, less if a panel would pass SNAPSHOT_KERNEL_PIXELS."""
    out, cin, kh, kw = shape
    wrapped = cin in (1, 3)
    rows, columns = (-(-out // KERNELS_PER_ROW), min(out, KERNELS_PER_ROW)) if wrapped else (out, cin)
    zoom = max(1, -(-KERNEL_TILE // max(kh, kw)))
    while zoom > 1 and rows * (kh * zoom + 2) * columns * (kw * zoom + 2) > SNAPSHOT_KERNEL_PIXELS:
        zoom -= 1
    return zoom


class BesideStepZero:
    """What :func:`pipeline.log_step` logs at a snapshot, each stage's picture beside its picture at
    step 0 (the tags in ``keep``, the probe images themselves, as they are)."""

    def __init__(self, writer: RunWriter, keep: set[str]):
        self.writer, self.keep = writer, keep
        self.first: dict[str, np.ndarray] = {}

    def images(self, tag: str, batch: torch.Tensor, step: int) -> None:
        from convlab.pictures import as_pixels, side_by_side

        if tag in self.keep:
            self.writer.images(tag, batch, step)
            return
        now = as_pixels(batch)
        first = self.first.setdefault(tag, now)
        self.writer.image(tag, side_by_side([("step 0", first), (f"step {step}", now)]), step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.scalar(tag, value, step)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        self.writer.histogram(tag, values, step)

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        self.writer.text(tag, markdown, step)


def graph_nodes(p: Plan, batch_size: int) -> list[GraphNode]:
    """The stack as TensorBoard's Graphs tab draws it: one box per stage, holding its layer and
    its parameters, in stage order; shapes for one batch."""
    nodes = [GraphNode("input", "Input", (), (batch_size, *p.input_shape), "images, floats in [0, 1]")]
    previous = "input"
    for s in p.stages:
        scope = s.prefix  # each stage a box at the top level: the graph opens on the stages, not one Sequential
        inputs = [previous]
        for name, tensor in s.module.named_parameters():
            nodes.append(GraphNode(f"{scope}/{name}", "Parameter", (), tuple(tensor.shape)))
            inputs.append(f"{scope}/{name}")
        previous = f"{scope}/{torch_name(s.cfg)}"
        nodes.append(GraphNode(previous, torch_name(s.cfg), tuple(inputs), (batch_size, *s.output_shape), call_text(s.cfg)))
    nodes.append(GraphNode("output", "Output", (previous,), (batch_size, *p.output_shape), "one score per class"))
    return nodes
