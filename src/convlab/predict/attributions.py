"""Why the model said what it said: attribution methods by name, over captum's classes.

Each method is one entry of :data:`ATTRIBUTIONS`: the captum class (``LayerGradCam``,
``Saliency``, ``Occlusion``; PyTorch's own interpretability library), the arguments it is made
and called with (every one shares captum's verb, ``attribute(inputs, target=...)``), and how its
result becomes one map per image at the input's size, 0 or more where larger means "mattered
more to the target class". captum is imported here only, inside the functions: its package
import loads matplotlib (1-2 s), which only ``convlab predict`` with attributions pays.

In-place activations: convlab's stacks never run in place (``layers.FACTORIES`` leaves
``inplace`` out), and the model is copied out of the stages with every ``inplace`` flag off, so
a captum method that hooks a module's output always sees that module's own output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.errors import ConfigError
from convlab.modules import call_text
from convlab.stages import ELEMENTWISE_KINDS, ConvConfig
from convlab.values import names

if TYPE_CHECKING:
    import torch

    from convlab.planning import Plan

# The stages right after a conv that keep its maps' channels and positions: Grad-CAM reads the
# conv's maps after them (after its batch norm and activation), as the Grad-CAM paper reads a
# network's last rectified conv maps.
PER_POSITION_KINDS = (*ELEMENTWISE_KINDS, "batchnorm2d")
# Occlusion's grey patch: this fraction of the image's shorter side, slid by half of itself.
OCCLUSION_FRACTION = 4
OCCLUSION_GREY = 0.5  # in pixels from 0 to 1, before any normalisation
# Images times perturbed copies per forward pass of occlusion.
OCCLUSION_BATCH = 256


class Classifier:
    """A stack as a classifier of pixels in [0, 1]: its normalisation, stages and class scores."""

    def __init__(self, plan: Plan, gradcam_layer: int | None = None):
        import torch

        self.plan = plan
        self.gradcam_layer = gradcam_layer  # --layer: the conv stage Grad-CAM reads; None: the last
        self.model = torch.nn.Sequential(*(s.module for s in plan.stages)).to(plan.device).eval()
        for module in self.model.modules():
            if getattr(module, "inplace", False):
                module.inplace = False
        self.gives_probabilities = plan.stages[-1].cfg.kind == "softmax"

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output: one score (logit) per class."""
        return self.model(self.plan.model_input(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the last stage (its own output when it already is a Softmax)."""
        out = self.scores(x)
        return out if self.gives_probabilities else out.softmax(1)


def conv_stages(plan: Plan) -> list[int]:
    """The stage numbers (1-based) of the stack's Conv2d stages."""
    return [i for i, s in enumerate(plan.stages, 1) if isinstance(s.cfg, ConvConfig)]


def gradcam_stages(plan: Plan, layer: int | None) -> tuple[int, int]:
    """(the conv stage Grad-CAM is at, the stage whose output it reads): ``layer`` or the last
    conv stage, read after the per-position stages that follow it (batch norm, activation)."""
    convs = conv_stages(plan)
    if layer is not None:
        if not 1 <= layer <= len(plan.stages):
            raise ConfigError(f"--layer {layer}: the stack has stages 1 to {len(plan.stages)}; its conv stages are {_listed(convs)}")
        if layer not in convs:
            cfg = plan.stages[layer - 1].cfg
            raise ConfigError(f"--layer {layer}: stage {layer} {call_text(cfg)} is not a conv stage; Grad-CAM reads a Conv2d's "
                              f"maps: {_listed(convs)}")
    elif not convs:
        raise ConfigError("Grad-CAM reads a Conv2d stage's maps, and this stack has none; choose --attributions saliency,occlusion")
    conv = layer or convs[-1]
    read = conv
    while read < len(plan.stages) and plan.stages[read].cfg.kind in PER_POSITION_KINDS:
        read += 1
    return conv, read


def _listed(stages: list[int]) -> str:
    return ", ".join(map(str, stages)) if stages else "none"


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Attribution:
    name: str
    title: str  # as a picture's caption names it
    help: str
    # captum's class (by name in captum.attr) and the callable it explains, from the classifier.
    captum_class: str
    explained: Callable[[Classifier], Callable[..., Any]]
    # The class's extra constructor arguments, and the call's, for a batch of images like ``x``.
    made_with: Callable[[Classifier], dict[str, Any]]
    called_with: Callable[[Classifier, torch.Tensor], dict[str, Any]]
    # captum's result -> one map (N, H, W) at the input's size.
    to_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    needs_conv: bool = False

    def detail(self, plan: Plan, layer: int | None) -> str:
        """A picture's second caption line: where or what it measures, in a few words."""
        if self.name == "gradcam":
            conv, read = gradcam_stages(plan, layer)
            return f"at stage {conv}" + (f", after stage {read}" if read != conv else "")
        if self.name == "occlusion":
            c, h, w = plan.input_shape
            (_, ph, pw), _ = occlusion_window(h, w, c)
            return f"drop in p, {ph}x{pw} patch"
        return "|d score / d pixel|"


def _gradcam_layer(c: Classifier) -> dict[str, Any]:
    _, read = gradcam_stages(c.plan, c.gradcam_layer)
    return {"layer": c.model[read - 1]}


def _upsampled(result: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    from torch.nn import functional as F

    return F.interpolate(result, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]


def occlusion_window(height: int, width: int, channels: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(sliding_window_shapes, strides): a patch a quarter of the shorter side, slid by half of itself."""
    patch = max(1, round(min(height, width) / OCCLUSION_FRACTION))
    stride = max(1, patch // 2)
    return (channels, patch, patch), (channels, stride, stride)


def _occlusion_call(c: Classifier, x: torch.Tensor) -> dict[str, Any]:
    window, strides = occlusion_window(x.shape[2], x.shape[3], x.shape[1])
    return {
        "sliding_window_shapes": window, "strides": strides, "baselines": OCCLUSION_GREY,
        "perturbations_per_eval": max(1, OCCLUSION_BATCH // len(x)),
    }


ATTRIBUTIONS: dict[str, Attribution] = {
    "gradcam": Attribution(
        "gradcam", "Grad-CAM",
        "the target class's gradient at a conv stage's maps, averaged per channel, weighing those maps (Selvaraju et al.)",
        "LayerGradCam",
        lambda c: c.scores, _gradcam_layer,
        lambda c, x: {"relu_attributions": True},
        _upsampled, needs_conv=True,
    ),
    "saliency": Attribution(
        "saliency", "saliency",
        "how much each pixel's change would change the target class's score: |gradient|, largest over colours (Simonyan et al.)",
        "Saliency",
        lambda c: c.scores, lambda c: {},
        lambda c, x: {"abs": True},
        lambda result, x: result.amax(1),
    ),
    "occlusion": Attribution(
        "occlusion", "occlusion",
        "how much the target class's probability drops when a grey patch covers that place (Zeiler & Fergus)",
        "Occlusion",
        lambda c: c.probabilities, lambda c: {},
        _occlusion_call,
        lambda result, x: result.mean(1),
    ),
}


def chosen(plan: Plan, attributions: str | None) -> list[str]:
    """The methods ``--attributions`` names (None: every one that applies to this stack)."""
    if attributions is None:
        return [n for n, a in ATTRIBUTIONS.items() if not a.needs_conv or conv_stages(plan)]
    picked = names(attributions)
    if picked == ["none"]:
        return []
    for name in picked:
        if name not in ATTRIBUTIONS:
            raise ConfigError(f"unknown attribution {name!r}; choose from {', '.join(ATTRIBUTIONS)} (comma-separated), or none")
    return list(dict.fromkeys(picked))


def attribute(name: str, classifier: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``name``'s map of each image in ``x`` (pixels in [0, 1], (N, C, H, W)) for its class in
    ``target``: (N, H, W) at the input's size, larger where it mattered more."""
    import warnings

    import captum.attr
    import torch

    method = ATTRIBUTIONS[name]
    explainer = getattr(captum.attr, method.captum_class)(method.explained(classifier), **method.made_with(classifier))
    x = x.to(classifier.plan.device)
    with torch.enable_grad(), warnings.catch_warnings():
        # Saliency says it sets requires_grad on the input itself; that is what is wanted.
        warnings.filterwarnings("ignore", message=".*required_grads has been set automatically")
        result = explainer.attribute(x.clone(), target=target.to(x.device), **method.called_with(classifier, x))
    return method.to_map(result.detach(), x).float()


def shown(maps: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Each map on [0, 1] for a picture (0 at 0 and below, 1 at its largest value), and each
    map's largest value (what 1 stands for; 0 when nothing was above 0)."""
    positive = maps.clamp(min=0).nan_to_num()
    peaks = positive.flatten(1).amax(1)
    scaled = positive / peaks.clamp_min(1e-30).view(-1, 1, 1)
    return scaled, [p if math.isfinite(p) else 0.0 for p in peaks.tolist()]

