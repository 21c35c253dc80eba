"""A training run: the steps, the evaluations and snapshots between them, model.pt, and what
stops it (a signal, a loss that is no longer finite) with the weights kept."""

from __future__ import annotations

import collections
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.config import dump_toml
from convlab.errors import ConvlabError
from convlab.experiment import Experiment
from convlab.gallery import MAX_CLASS_ROWS
from convlab.train.data import TrainingData, load_data, model_batch
from convlab.train.evaluation import Evaluation, evaluate, log_evaluation
from convlab.train.plan import TrainPlan, counted, describe_training, is_model, memory_format, network, plan_training
from convlab.train.report import advice, epoch_line, loss_windows, seconds_left
from convlab.trained import MODEL_FILE

if TYPE_CHECKING:
    import torch

    from convlab.pipeline import Reporter


class TrainingError(ConvlabError):
    """Training cannot go on (the loss is no longer a finite number)."""


# The HParams metrics, in the order its table shows them.
METRICS = ["test/accuracy", "test/loss", "train/loss", "train/accuracy"]
# Training scalars charted together (TensorBoard's Custom Scalars tab): train against test, and
# every stage's gradient norm and update ratio in one chart each.
LAYOUT = {
    "training": {
        "loss: train (each batch) and test (each evaluation)": [r"train/loss$", r"test/loss$"],
        "accuracy: train (each batch) and test (each evaluation)": [r"train/accuracy$", r"test/accuracy$"],
    },
    "gradients": {
        "gradient norm of each stage's weight": [r"gradient-norm/"],
        "update / weight: each step's change of each stage's weight": [r"update-ratio/"],
    },
}
# The HParams columns shown first: what the user chose.
CHOSEN = ("train.optimizer", "train.lr", "train.epochs", "data.batch_size", "stack.layers")


def train(exp: Experiment, reporter: Reporter | None = None, *, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train and log the run; returns its summary (also saved as summary.json). ``model``: a Python
    ``nn.Module``, trained in place, instead of the experiment's stages (see :func:`plan_training`)."""
    from convlab import pipeline, planning
    from convlab.interrupts import stop_signals_between_steps
    from convlab.runs import check_logdir

    reporter = reporter or pipeline.SilentReporter()
    with stop_signals_between_steps() as guard:
        tp = plan_training(exp, model)
        exp = tp.exp
        check_logdir(exp.run.logdir, exp.run.run_name)
        loading = time.perf_counter()
        data = load_data(tp)
        loading = time.perf_counter() - loading
        # The images there are (a dataset's files may hold fewer than its official split).
        tp = counted(tp, data.train_count, len(data.eval_y))
        for note in data.images.notes:
            reporter.info(note)
        if is_model(tp.stack):
            from convlab.modelrun import ModelLog

            log = ModelLog(tp.stack, data.images, tp.num_steps)
        else:
            log = pipeline.RunLog(tp.stack, data.images, tp.num_steps, say=reporter.info)
        try:
            return _train(tp, data, log, guard, reporter, loading)
        except BaseException as escaped:
            exc = planning.memory_error(escaped, tp.stack) or escaped
            model_note = ""
            if log.summary["steps"] and not isinstance(exc, TrainingError):
                try:
                    save_model(network(tp.stack), log.run_dir)
                    model_note = f"; {log.run_dir / MODEL_FILE} holds the weights after step {log.summary['steps']}"
                except Exception as error:  # already stopping: say so, and report what stopped the run
                    model_note = f"; model.pt could not be saved ({getattr(error, 'strerror', None) or error})"
            log.stopped(exc)
            if hasattr(exc, "detail") and model_note:
                exc.detail += model_note
            if exc is not escaped:
                raise exc from None
            raise


def _train(tp: TrainPlan, data: TrainingData, log: Any, guard: Any, reporter: Reporter, loading: float) -> dict[str, Any]:
    import torch

    from convlab import planning
    from convlab.gradients import Gradients
    from convlab.optimizers import create_optimizer
    from convlab.snapshots import Snapshots

    exp, p, writer, t = tp.exp, tp.stack, log.writer, tp.exp.train
    device, classes, bs = p.device, data.images.classes, exp.data.batch_size
    torch.manual_seed(exp.run.seed)  # dropout's masks
    layout = memory_format(tp)
    model = network(p) if is_model(p) else network(p).to(device, memory_format=layout)
    optimizer = create_optimizer(t.optimizer, model.parameters(), t.lr, t.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    live = model.state_dict()
    # The weights before the step's update: kept through a NaN (the weights whose loss was
    # finite), and what each update is measured against.
    backup = {k: v.clone() for k, v in live.items()}
    gradients = Gradients.of(p, model, backup)
    order_rng = torch.Generator().manual_seed(exp.run.seed)
    if is_model(p):
        from convlab.modelrun import ModelSnapshots, config_text

        snapshots: Snapshots = ModelSnapshots(p, writer, data.eval_x, data.eval_y, device)
        config, layer_text = config_text(p), p.describe()
    else:
        snapshots = Snapshots(p, writer, data.eval_x, data.eval_y, device, watch=log.nonfinite)
        config, layer_text = dump_toml(exp), planning.describe(p)
    summary = log.summary
    kernels = [f"{s.prefix}/kernels" for s in snapshots.kernels]
    pictures = ["test/confusion", "test/mistakes"] + (["test/unsure"] if tp.classes <= MAX_CLASS_ROWS else [])
    tags = [tag for tag in summary["tags"] if tag not in kernels] + kernels + pictures
    summary.update(command="train", tags=tags, planned_steps=tp.num_steps, train_images=tp.train_images,
                   eval_images=len(data.eval_y), eval_set=data.eval_name, classes=tp.classes)

    # Where the time goes, in seconds (bench/train_bench.py reports it).
    timing = summary["timing"] = {"loading": round(loading, 3), "header": 0.0, "steps": 0.0, "evaluations": 0.0, "snapshots": 0.0}
    clock = time.perf_counter()

    def lap(what: str) -> float:
        nonlocal clock
        now = time.perf_counter()
        timing[what] = round(timing[what] + now - clock, 3)
        took, clock = now - clock, now
        return took

    _log_header(tp, data, log, config, layer_text)
    lap("header")
    snapshots.log(0, classes)
    gradients.histograms(writer, 0)
    snapshot_seconds = lap("snapshots")
    summary["kernel_scale"] = snapshots.limits
    reporter.info(layer_text)
    reporter.info(describe_training(tp))
    reporter.info(f"run: {log.run_dir}")

    last: Evaluation | None = None

    def evaluation(step: int) -> None:
        nonlocal last
        last = evaluate(model, data, tp, device)
        log_evaluation(writer, last, data, classes or tuple(str(i) for i in range(tp.classes)), step)
        summary.update(test_loss=round(last.loss, 6), test_accuracy=round(last.accuracy, 6), evaluated_at=step)
        summary["model"] = str(save_model(model, log.run_dir))

    started = time.perf_counter()
    losses: list[float] = []
    step_times: collections.deque[float] = collections.deque(maxlen=50)
    eval_seconds: float | None = None
    pending: list[Any] = []  # the last step's gradient measures, read back with this step's loss
    epoch_loss = epoch_correct = epoch_seen = epoch_steps = 0
    epoch_started = started
    step, epoch, order = 0, -1, None
    with reporter.progress(tp.num_steps, f"train {data.images.name}/{data.images.split}") as advance:
        while step < tp.num_steps:
            position = step % tp.steps_per_epoch
            if position == 0:
                epoch += 1
                order = data.epoch_order(order_rng)
            # A signal is raised when a whole step is done: trained, logged and counted (a signal
            # raised amid the writer's queue could lose an event that summary.json counts).
            with guard.step():
                x, y = data.batch(order, position * bs, min((position + 1) * bs, tp.train_images))
                x, y = model_batch(x, tp, device, layout), y.to(device)
                model.train()
                out = model(x)
                loss = loss_fn(out, y)
                # One read from the device a step: this loss, and the previous step's gradient measures.
                loss_value, correct, *measured = torch.stack([loss.detach(), (out.argmax(1) == y).sum(), *pending]).tolist()
                if measured:
                    gradients.log(writer, measured, step)
                if not math.isfinite(loss_value):
                    _stop_on_nan(model, list(live.values()), list(backup.values()), log, step + 1, loss_value, t)
                torch._foreach_copy_(list(backup.values()), list(live.values()))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                pending = gradients.measure()
                step += 1
                writer.scalar("train/loss", loss_value, step)
                writer.scalar("train/accuracy", correct / len(y), step)
                summary["steps"] = step
            losses.append(loss_value)
            epoch_loss, epoch_correct, epoch_seen, epoch_steps = epoch_loss + loss_value, epoch_correct + correct, epoch_seen + len(y), epoch_steps + 1
            step_times.append(lap("steps"))
            final = step == tp.num_steps
            if final and pending:  # the last step's measures: nothing comes after to read them with
                gradients.log(writer, torch.stack(pending).tolist(), step)
                pending = []
            if step % tp.eval_every == 0 or final:
                advance(steps=0, status=f"evaluating {len(data.eval_y):,} images")
                with guard.step():
                    evaluation(step)
                eval_seconds = lap("evaluations")
            if step % t.snapshot_every == 0 or final:
                with guard.step():
                    snapshots.log(step, classes)
                    gradients.histograms(writer, step)
                snapshot_seconds = lap("snapshots")
            if step % tp.steps_per_epoch == 0 or final:
                now = time.perf_counter()
                reporter.info(epoch_line(epoch + 1, tp, epoch_steps, epoch_loss, epoch_correct, epoch_seen, now - epoch_started,
                                         last, summary.get("evaluated_at"), step))
                epoch_loss = epoch_correct = epoch_seen = epoch_steps = 0
                epoch_started = now
            step_seconds = sum(step_times) / len(step_times)
            advance(status=f"epoch {epoch + 1} loss {loss_value:.3f} {bs / max(step_seconds, 1e-9):,.0f} img/s",
                    eta=seconds_left(tp, step, step_seconds, eval_seconds, snapshot_seconds))
    if t.top:
        _log_top(tp, data, writer, step, summary)
        lap("snapshots")
    windows = loss_windows(losses)
    if windows is not None:
        summary.update(train_loss_first=round(windows[0], 6), train_loss_last=round(windows[1], 6))
    summary["advice"] = advice(summary, t)
    if summary["advice"]:
        writer.text("advice", "\n\n".join(summary["advice"]), step)
    return log.complete(time.perf_counter() - started)


def _log_header(tp: TrainPlan, data: TrainingData, log: Any, config: str, layer_text: str) -> None:
    """config.toml, summary.json, the texts (config, the stage table, the plan, the data), hparams (the HParams
    tab ranks runs by the last test/accuracy), the custom scalars layout, the graph (of a stack: a model's calls
    need not be a chain)."""
    from convlab import pipeline
    from convlab.runs import write_config, write_summary
    from convlab.snapshots import graph_nodes

    exp, p, writer = tp.exp, tp.stack, log.writer
    write_config(log.run_dir, config)
    write_summary(log.run_dir, log.summary)
    writer.text("config", pipeline._markdown_block(config))
    writer.text("layer", pipeline._markdown_block(layer_text))
    writer.text("training", pipeline._markdown_block(describe_training(tp)))
    writer.text("data", pipeline._markdown_block(data.images.describe()))
    writer.hparams(pipeline.hparams(exp, CHOSEN) | ({"model": p.table.model} if is_model(p) else {}), METRICS, first=CHOSEN)
    writer.custom_scalars(LAYOUT)
    if not is_model(p):
        writer.graph(graph_nodes(p, exp.data.batch_size))


def save_model(model: torch.nn.Module, run_dir: Path) -> Path:
    """model.pt, a state_dict, replaced atomically: a reader never sees half of one."""
    import torch

    path, tmp = run_dir / MODEL_FILE, run_dir / f".{MODEL_FILE}.tmp"
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path


def _log_top(tp: TrainPlan, data: TrainingData, writer: Any, step: int, summary: dict[str, Any]) -> None:
    """--top: each map stage's top patches over the evaluation images, beside the last kernels (convlab top)."""
    from convlab.data import ImageSet
    from convlab.top.run import log_top, top_of_images

    name, _, split = data.eval_name.partition("/")
    images = ImageSet(name, split, data.eval_x, data.eval_y, data.images.classes)
    summary["tags"] = [*summary["tags"], *log_top(writer, top_of_images(tp.stack, images), step)]


def _stop_on_nan(model: Any, live: list, backup: list, log: Any, step: int, value: float, t: Any) -> None:
    """The loss is NaN or infinite: keep the weights whose loss was finite, and stop in one line."""
    import torch

    kept = f"the weights of step {step - 1}, the last with a finite loss, are in {log.run_dir / MODEL_FILE}"
    if step == 1:  # no optimizer step ran: --lr is not the cause
        stack = log.plan.exp.stack
        source = ("the model's own" if is_model(log.plan) else f"from --init-weights {stack.weights}" if stack.weights is not None
                  else f"from --pretrained {stack.pretrained}" if stack.pretrained is not None else "PyTorch's init")
        raise TrainingError(
            f"the training loss is {value} at step 1, before any weight was updated: the initial weights ({source}) "
            "and these layers already give it, so nothing was kept and --lr is not the cause; check the weights and "
            "the layers' arguments"
        )
    torch._foreach_copy_(live, backup)
    save_model(model, log.run_dir)
    raise TrainingError(
        f"the training loss is {value} at step {step} ({t.optimizer}, lr={t.lr:g}): the weights have diverged; "
        f"{kept}; try a smaller --lr (e.g. --lr {t.lr / 10:g})"
    )
