"""What a training run says: a line per epoch, the time left, and the advice at its end when it
has not learned."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convlab.train.evaluation import Evaluation
    from convlab.train.plan import TrainPlan


# Within this many points of chance (1 / classes), an accuracy is "about chance"; a training loss
# whose last steps average more than LOSS_FALLEN of its first steps' has "not fallen".
NEAR_CHANCE = 0.05
LOSS_FALLEN = 0.9
# The first and last this fraction of the steps (at least 1, at most LOSS_WINDOW_MAX) are compared.
LOSS_WINDOW, LOSS_WINDOW_MAX = 0.1, 50


def loss_windows(losses: list[float]) -> tuple[float, float] | None:
    """The mean training loss of the first and of the last steps, or None for fewer than 4 steps."""
    if len(losses) < 4:
        return None
    w = max(1, min(LOSS_WINDOW_MAX, int(len(losses) * LOSS_WINDOW)))
    return sum(losses[:w]) / w, sum(losses[-w:]) / w


def advice(summary: dict[str, Any], t: Any) -> list[str]:
    """What the end of a run should say when it has not learned: an accuracy about chance, a
    loss that has not fallen; with what to try."""
    notes = []
    chance = 1 / summary["classes"]
    accuracy = summary.get("test_accuracy")
    if accuracy is not None and accuracy < chance + NEAR_CHANCE:
        notes.append(f"{accuracy:.1%} is about chance for {summary['classes']} classes ({chance:.1%}): the model has not learned "
                     "to tell them apart yet")
    windows = summary.get("train_loss_first"), summary.get("train_loss_last")
    if None not in windows and windows[1] > LOSS_FALLEN * windows[0]:
        notes.append(f"train/loss has not fallen ({windows[0]:.3g} over the first steps, {windows[1]:.3g} over the last)")
    if not notes:
        return []
    tries = [f"more steps (--epochs {2 * t.epochs})"]
    if t.optimizer == "sgd":
        tries += ["--optimizer adam --lr 0.001", f"a larger --lr (e.g. --lr {t.lr * 5:g})"]
    elif t.lr > 0.003:
        tries.append("a smaller --lr (e.g. --lr 0.001)")
    else:
        tries.append(f"a larger --lr (e.g. --lr {t.lr * 3:g})")
    return [*notes, "try " + ", ".join(tries[:-1]) + f" or {tries[-1]}"]


def epoch_line(epoch: int, tp: TrainPlan, steps: int, loss: float, correct: int, seen: int, seconds: float,
               last: Evaluation | None, evaluated_at: int | None, step: int) -> str:
    """One line per epoch: its training loss and accuracy (over its batches, as they were trained
    on), the last test accuracy, and how long it took."""
    t = tp.exp.train
    head = f"epoch {epoch}/{t.epochs}"
    if steps < tp.steps_per_epoch:
        head += f" ({steps:,} of {tp.steps_per_epoch:,} steps)"
    line = f"{head}: train loss {loss / max(steps, 1):.3f}, accuracy {correct / max(seen, 1):.1%}"
    if last is not None:
        when = "" if evaluated_at == step else f" at step {evaluated_at}"
        line += f"; test accuracy {last.accuracy:.1%} (loss {last.loss:.3f}){when}"
    return line + f"; {seconds:.1f} s"


def seconds_left(tp: TrainPlan, step: int, step_seconds: float, eval_seconds: float | None, snapshot_seconds: float) -> float:
    """What is left of the run at the measured speeds: the steps, and the evaluations and snapshots
    still to come. Before the first evaluation, one is counted as a third of a training step per
    batch (a forward pass without the backward)."""
    t, n = tp.exp.train, tp.num_steps
    evals, snapshots = _still_to_come(step, n, tp.eval_every), _still_to_come(step, n, t.snapshot_every)
    if eval_seconds is None:
        eval_seconds = math.ceil(tp.eval_images / tp.exp.data.batch_size) * step_seconds / 3
    return (n - step) * step_seconds + evals * eval_seconds + snapshots * snapshot_seconds


def _still_to_come(step: int, last: int, every: int) -> int:
    """How many of the steps after ``step`` up to ``last`` are multiples of ``every`` or ``last`` itself."""
    return last // every - step // every + (1 if last % every and step < last else 0)
