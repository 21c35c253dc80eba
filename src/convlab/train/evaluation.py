"""One pass over the evaluation set, and what it logs: test/loss and test/accuracy, the confusion
matrix, the mistakes (most confident first) and, per class, the right answers it was least sure of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convlab.gallery import MAX_CLASS_ROWS
from convlab.train.data import TrainingData, model_batch
from convlab.train.plan import TrainPlan, memory_format

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Evaluation:
    """One pass over the evaluation set: the numbers, and what was predicted for each image."""

    loss: float  # mean cross-entropy
    accuracy: float
    confusion: torch.Tensor  # counts [true, predicted]
    predicted: torch.Tensor  # (N,) the class each image was given
    confidence: torch.Tensor  # (N,) its probability (softmax of the scores)
    p_true: torch.Tensor  # (N,) the probability given to the image's true class


def evaluate(model: torch.nn.Module, data: TrainingData, tp: TrainPlan, device: str) -> Evaluation:
    """The model (in eval mode) over the evaluation set, batch by batch."""
    import torch
    import torch.nn.functional as F

    k, bs, n = tp.classes, tp.exp.data.batch_size, len(data.eval_y)
    model.eval()
    loss = torch.zeros((), device=device)
    confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
    predicted, confidence, p_true = [], [], []
    with torch.inference_mode():
        for start in range(0, n, bs):
            x = model_batch(data.eval_x[start : start + bs], tp, device, memory_format(tp))
            y = data.eval_y[start : start + bs].to(device)
            out = model(x).float()
            loss += F.cross_entropy(out, y, reduction="sum")
            probabilities = out.softmax(dim=1)
            best, guess = probabilities.max(dim=1)
            confusion += torch.bincount(y * k + guess, minlength=k * k)
            predicted.append(guess)
            confidence.append(best)
            p_true.append(probabilities.gather(1, y[:, None])[:, 0])
    confusion = confusion.view(k, k).cpu()
    loss_value = loss.item() / n
    return Evaluation(loss_value, confusion.diag().sum().item() / n, confusion,
                      *(torch.cat(t).cpu() for t in (predicted, confidence, p_true)))


def log_evaluation(writer: Any, ev: Evaluation, data: TrainingData, classes: tuple[str, ...], step: int) -> None:
    """test/loss and test/accuracy, the confusion matrix, the mistakes (most confident first) and,
    per class, the right answers it was least sure of."""
    from convlab import gallery
    from convlab.confusion import confusion_image

    writer.scalar("test/loss", ev.loss, step)
    writer.scalar("test/accuracy", ev.accuracy, step)
    where = f"{len(data.eval_y)} images of {data.eval_name}"
    writer.image("test/confusion", confusion_image(ev.confusion.tolist(), classes, f"step {step}: accuracy {ev.accuracy:.1%} on {where}"), step)
    images = data.eval_x.numpy()
    labels, predicted, confidence, p_true = (t.tolist() for t in (data.eval_y, ev.predicted, ev.confidence, ev.p_true))
    wrong = gallery.mistakes(ev.predicted, ev.confidence, data.eval_y)
    title = f"step {step}, {where}"
    writer.image("test/mistakes", gallery.mistakes_picture(images, wrong, len(wrong), labels, predicted, confidence, classes, title), step)
    listed = [f"{n}. #{i}: {classes[labels[i]]}, predicted {classes[predicted[i]]} ({confidence[i]:.3f})"
              for n, i in enumerate(wrong[: gallery.MAX_MISTAKES], 1)]
    writer.text("test/mistakes", f"{len(wrong)} mistake(s) at step {step}, the most confident first (#index in the evaluation "
                f"set: true class, predicted class (its probability)):\n\n" + "\n".join(listed), step)
    if len(classes) <= MAX_CLASS_ROWS:
        rows = gallery.least_confident(ev.predicted, ev.p_true, data.eval_y, len(classes))
        writer.image("test/unsure", gallery.unsure_picture(images, rows, p_true, classes, title), step)
