"""Attributions: faithful on a model that learned something, at the input's size, chosen by name
from a registry over captum's classes, unaffected by in-place activations."""

from __future__ import annotations

import pytest
import torch

from convlab import planning
from convlab.config import resolve
from convlab.data import SHAPES_CLASSES, make_shapes
from convlab.errors import ConfigError
from convlab.predict.attributions import ATTRIBUTIONS, Classifier, attribute, chosen, gradcam_stages, shown
from convlab.trained import run_settings

# The shapes whose place in the image is what they are (a texture fills the whole image: no part
# of it matters more than another, so there blanking the "top" pixels cannot beat random ones).
SPATIAL = [SHAPES_CLASSES.index(name) for name in ("circle", "square", "triangle", "ring", "cross")]
BLANKED = 0.2
GREY = 0.5


@pytest.fixture(scope="module")
def classifier(shapes_classifier) -> Classifier:
    exp = resolve("stack", run_settings(shapes_classifier) | {"run": {"device": "cpu"}})
    return Classifier(planning.plan(exp))


@pytest.fixture(scope="module")
def shapes_it_knows(classifier):
    """At least 100 images of the spatial classes, unseen in training, that the model gets right."""
    pixels, labels = make_shapes(600, seed=1)
    x = pixels.float() / 255
    with torch.no_grad():
        right = classifier.scores(x).argmax(1) == labels
    keep = right & torch.isin(labels, torch.tensor(SPATIAL))
    assert keep.sum() >= 100, int(keep.sum())
    return x[keep][:120], labels[keep][:120]


@pytest.fixture(scope="module")
def maps(classifier, shapes_it_knows):
    x, y = shapes_it_knows
    return {name: attribute(name, classifier, x, y) for name in ("gradcam", "occlusion")}


def _drop(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, ranking: torch.Tensor) -> float:
    """The mean fall of the target class's probability when the top BLANKED of each image's
    pixels by ``ranking`` (N, H, W) are set to grey."""
    flat = ranking.flatten(1)
    count = round(BLANKED * flat.shape[1])
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(count, dim=1).indices, True)
    blanked = torch.where(mask.view(-1, 1, *x.shape[2:]), GREY, x)
    with torch.no_grad():
        before = classifier.probabilities(x).gather(1, y[:, None])
        after = classifier.probabilities(blanked).gather(1, y[:, None])
    return float((before - after).mean())


@pytest.mark.parametrize("name", ["gradcam", "occlusion"])
def test_blanking_what_it_ranks_highest_costs_the_class_clearly_more_than_random_pixels(classifier, shapes_it_knows, maps, name):
    x, y = shapes_it_knows
    ranked = _drop(classifier, x, y, maps[name])
    randoms = [_drop(classifier, x, y, torch.rand(len(x), 32, 32, generator=torch.Generator().manual_seed(s))) for s in range(3)]
    random = sum(randoms) / len(randoms)
    assert ranked > 1.4 * random and ranked - random > 0.08, (name, ranked, randoms)


def test_a_map_is_at_the_input_s_size_and_shown_on_0_to_1(classifier, shapes_it_knows, maps):
    x, _ = shapes_it_knows
    for name, m in maps.items():
        assert m.shape == (len(x), 32, 32), name
        scaled, peaks = shown(m)
        assert scaled.shape == m.shape and float(scaled.min()) >= 0 and float(scaled.max()) <= 1
        peaks = torch.tensor(peaks)
        # 1 at each map's largest value; a map with nothing above 0 (Grad-CAM where every place
        # speaks against the class, rectified) is all 0.
        assert torch.equal(scaled.flatten(1).amax(1), (peaks > 0).float()) and (peaks > 0).float().mean() > 0.75
    assert float(maps["gradcam"].min()) >= 0  # Grad-CAM is rectified: 0 where nothing speaks for the class


def test_grad_cam_of_a_grey_28x28_model_is_28x28():
    exp = resolve("stack", {"stack": {"layers": ["Conv2d(1, 4, 3)", "ReLU()", "MaxPool2d(2)", "Conv2d(4, 6, 3, stride=2)",
                                                 "Flatten()", "Linear(216, 10)"]},
                            "data": {"dataset": "mnist"}, "run": {"device": "cpu"}})
    c = Classifier(planning.plan(exp))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for name in ATTRIBUTIONS:
        m = attribute(name, c, x, torch.tensor([0, 3, 9]))
        assert m.shape == (3, 28, 28), name


def test_grad_cam_reads_a_conv_after_its_activation_and_layer_must_be_a_conv(classifier):
    p = classifier.plan
    assert gradcam_stages(p, None) == (3, 4)  # the last Conv2d, read after its ReLU
    assert gradcam_stages(p, 1) == (1, 2)
    with pytest.raises(ConfigError, match=r"--layer 2: stage 2 ReLU\(\) is not a conv stage; .*: 1, 3"):
        gradcam_stages(p, 2)
    with pytest.raises(ConfigError, match="--layer 9: the stack has stages 1 to 7"):
        gradcam_stages(p, 9)


def test_attributions_by_name_every_one_that_applies_by_default(classifier):
    assert chosen(classifier.plan, None) == ["gradcam", "saliency", "occlusion"]
    assert chosen(classifier.plan, "occlusion,gradcam") == ["occlusion", "gradcam"]
    assert chosen(classifier.plan, "none") == []
    with pytest.raises(ConfigError, match="unknown attribution 'gradcams'; choose from gradcam, saliency, occlusion"):
        chosen(classifier.plan, "gradcams")
    flat = planning.plan(resolve("stack", {"stack": {"layers": ["Flatten()", "Linear(3072, 10)"]}, "run": {"device": "cpu"}}))
    assert chosen(flat, None) == ["saliency", "occlusion"]  # no conv stage: no Grad-CAM
    with pytest.raises(ConfigError, match="Grad-CAM reads a Conv2d stage's maps, and this stack has none"):
        gradcam_stages(flat, None)


def test_in_place_activations_change_nothing(classifier):
    """A stack written with ReLU(inplace=True) runs its ReLUs out of place; and captum on the same
    network built by hand with in-place ReLUs gives the same Grad-CAM."""
    from captum.attr import LayerGradCam
    from torch import nn
    from torch.nn import functional as F

    layers = ["Conv2d(3, 16, 5, stride=2, padding=2)", "ReLU(inplace=True)", "Conv2d(16, 16, 3, padding=1)",
              "ReLU(inplace=True)", "MaxPool2d(2)", "Flatten()", "Linear(1024, 10)"]
    exp = resolve("stack", {"stack": {"layers": layers, "weights": classifier.plan.exp.stack.weights},
                            "data": {"dataset": "shapes"}, "run": {"device": "cpu"}})
    ours = Classifier(planning.plan(exp))
    assert not any(getattr(m, "inplace", False) for m in ours.model.modules())
    by_hand = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1),
                            nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 10)).eval()
    by_hand.load_state_dict(ours.model.state_dict())
    x = make_shapes(4, seed=2)[0].float() / 255
    target = torch.tensor([0, 1, 2, 3])
    theirs = LayerGradCam(by_hand, by_hand[3]).attribute(x, target=target, relu_attributions=True)
    theirs = F.interpolate(theirs, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(attribute("gradcam", ours, x, target), theirs.detach(), atol=1e-6)
