"""What a training run shows of its model besides the numbers: at each snapshot, the kernels of
every conv stage on one fixed range per stage (so change over time is not renormalised away), what
training has added to them so far (the kernels minus those of step 0, on the same range: early
layers' initial noise hides it), and every stage's view of one fixed probe batch; once, the
model's graph for TensorBoard's Graphs tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlab.config import ConvConfig
from convlab.modules import call_text, torch_name
from convlab.writer import GraphNode

# A snapshot's kernel picture is drawn again at every snapshot: auto zoom keeps it within this
# many pixels (a deep layer's 64x32 kernels of 5x5 at the stack's zoom would be 8 MP, 0.3 s a snapshot).
SNAPSHOT_KERNEL_PIXELS = 1 << 20

if TYPE_CHECKING:
    import torch

    from convlab.planning import Plan
    from convlab.writer import RunWriter


class Snapshots:
    """Kernels and the probe batch's views, logged at the steps asked."""

    def __init__(self, p: Plan, writer: RunWriter, eval_x: torch.Tensor, eval_y: torch.Tensor, device: str):
        from convlab.views import selected_views

        self.plan, self.writer = p, writer
        views = p.exp.views
        self.probe = eval_x[: views.images].to(device).float().div_(255)
        self.probe_labels = eval_y[: views.images]
        self.kernels = [
            s for s in p.stages
            if isinstance(s.cfg, ConvConfig) and any(v.name == "kernels" for v in selected_views(p.exp, s.cfg, s.output_shape))
        ]
        self.limits: dict[str, float] = {}
        self.initial: dict[str, torch.Tensor] = {}

    def log(self, step: int, classes: tuple[str, ...]) -> None:
        self.log_views(step, classes)
        self.log_kernels(step)

    def log_views(self, step: int, classes: tuple[str, ...]) -> None:
        """Every stage's view of the probe images."""
        from convlab import pipeline

        p = self.plan
        modules = [s.module for s in p.stages]
        for m in modules:
            m.eval()
        pipeline.log_step(self.writer, p, self.probe, pipeline._forward(modules, p.model_input(self.probe)), step,
                          labels=self.probe_labels, classes=classes)

    def log_kernels(self, step: int) -> None:
        """Each conv's kernels on its fixed range, and what training has added to them."""
        from convlab.pictures import kernel_view

        p = self.plan
        for s in self.kernels:
            tag = f"{s.prefix}/kernels"
            weight = s.module.weight.detach()
            if tag not in self.limits:  # one range per stage, from the first snapshot
                self.limits[tag] = float(weight.abs().max()) or 1.0
                self.initial[tag] = weight.clone()
            zoom = p.exp.views.zoom or kernel_zoom(tuple(weight.shape))
            self.writer.images(tag, kernel_view(weight, zoom=zoom, limit=self.limits[tag]), step)
            self.writer.images(f"{tag}-change", kernel_view(weight - self.initial[tag], zoom=zoom, limit=self.limits[tag]), step)


def kernel_zoom(shape: tuple[int, ...]) -> int:
    """The views' auto zoom for a conv weight's picture, less if the picture would pass SNAPSHOT_KERNEL_PIXELS."""
    from convlab.pictures import auto_zoom

    out, cin, kh, kw = shape
    rows, columns = (1, out) if cin == 3 else (out, cin)
    zoom = auto_zoom(kh, kw, columns)
    while zoom > 1 and rows * (kh * zoom + 2) * columns * (kw * zoom + 2) > SNAPSHOT_KERNEL_PIXELS:
        zoom -= 1
    return zoom


def graph_nodes(p: Plan, batch_size: int) -> list[GraphNode]:
    """The stack as TensorBoard's Graphs tab draws it: one box per stage, holding its layer and
    its parameters, in stage order; shapes for one batch."""
    nodes = [GraphNode("input", "Input", (), (batch_size, *p.input_shape), "images, floats in [0, 1]")]
    previous = "input"
    for s in p.stages:
        scope = f"Sequential/{s.prefix}"
        inputs = [previous]
        for name, tensor in s.module.named_parameters():
            nodes.append(GraphNode(f"{scope}/{name}", "Parameter", (), tuple(tensor.shape)))
            inputs.append(f"{scope}/{name}")
        previous = f"{scope}/{torch_name(s.cfg)}"
        nodes.append(GraphNode(previous, torch_name(s.cfg), tuple(inputs), (batch_size, *s.output_shape), call_text(s.cfg)))
    nodes.append(GraphNode("output", "Output", (previous,), (batch_size, *p.output_shape), "one score per class"))
    return nodes
