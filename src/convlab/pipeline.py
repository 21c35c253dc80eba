"""run(experiment): seed -> data -> layer -> view -> writer; returns a summary.

Everything that can be wrong with what the user asked for is found by :func:`plan` before
any data is loaded or any file is written; a run directory exists only once the data is in
hand, and a run that fails before its first step leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol

import torch

from convlab import data as datasets
from convlab.config import ConfigError, ConvConfig, Experiment, Interrupted, PoolConfig, dump_toml, names, selected_views
from convlab.explain import explain
from convlab.layers import build_layer, describe_arithmetic, max_unpool, output_shape, pool_stride, resolved_in_channels
from convlab.views import channel_view, kernel_view, reshape_view
from convlab.writer import CONFIG_FILE, SUMMARY_FILE, RunWriter, WriteError, check_logdir, create_run_dir

OUTPUT_TAGS = {"conv": "output", "pool": "maxpool"}


class Reporter(Protocol):
    def info(self, text: str) -> None: ...

    def progress(self, total: int, description: str) -> ContextManager[Callable[[], None]]: ...


class SilentReporter:
    def info(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        yield lambda: None


@dataclass(frozen=True)
class Plan:
    """What a run will do, decided without loading data or writing anything."""

    exp: Experiment
    device: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    module: torch.nn.Module
    arithmetic: list[str]
    num_images: int
    num_steps: int

    def __post_init__(self) -> None:
        batch = min(self.exp.data.batch_size, self.num_images)
        elements = batch * math.prod(self.output_shape)
        if elements > MAX_TENSOR_ELEMENTS:
            raise ConfigError(
                f"one batch of {batch} outputs of {self.output_shape} (C, H, W) would need "
                f"{elements * 4 / 2**30:,.0f} GiB; use a smaller --batch-size, --padding or --out-channels"
            )

    @property
    def output_tag(self) -> str:
        if isinstance(self.exp.layer, PoolConfig) and self.exp.layer.mode == "avg":
            return "avgpool"
        return OUTPUT_TAGS[self.exp.command]


# 4 GiB of float32 for one batch's output or the weights: far beyond any lesson (the tutorial's
# batch is 1.4 MB); past it a typo (-p 10000, -c 1000000) would exhaust memory mid-run.
MAX_TENSOR_ELEMENTS = 2**30


def check_weights(exp: Experiment, in_channels: int) -> None:
    """Refuse, before allocating them, conv weights that no lesson means."""
    if isinstance(exp.layer, ConvConfig):
        kh, kw = exp.layer.kernel_size
        per_group = max(in_channels // exp.layer.groups, 1)
        elements = exp.layer.out_channels * per_group * kh * kw
        if elements > MAX_TENSOR_ELEMENTS:
            raise ConfigError(
                f"the weights ({exp.layer.out_channels} x {per_group} x {kh} x {kw}) would need "
                f"{elements * 4 / 2**30:,.0f} GiB; use a smaller --out-channels or --kernel"
            )


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name} was asked for, but no CUDA GPU is available to PyTorch here; "
                "use --device cpu (or auto)"
            )
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"--device {name}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return name


def count_steps(num_images: int, batch_size: int, max_batches: int | None) -> int:
    steps = math.ceil(num_images / batch_size)
    return min(steps, max_batches) if max_batches is not None else steps


def plan(exp: Experiment) -> Plan:
    spec = datasets.get_dataset(exp.data.dataset)
    input_shape = spec.shape(exp.data)
    out_shape = output_shape(exp.layer, input_shape)
    device = resolve_device(exp.run.device)
    torch.manual_seed(exp.run.seed)
    check_weights(exp, input_shape[0])
    module = build_layer(exp.layer, resolved_in_channels(exp.layer, input_shape[0]))
    num_images = spec.num_images(exp.data)
    return Plan(
        exp=exp,
        device=device,
        input_shape=input_shape,
        output_shape=out_shape,
        module=module,
        arithmetic=describe_arithmetic(exp.layer, input_shape),
        num_images=num_images,
        num_steps=count_steps(num_images, exp.data.batch_size, exp.data.max_batches),
    )


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def default_run_name(exp: Experiment, now: datetime | None = None) -> str:
    """Says what ran and when, e.g. ``conv-c6-k3-s1-p0-20261128-142501``."""
    layer = exp.layer
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    if isinstance(layer, ConvConfig):
        pad = layer.padding if isinstance(layer.padding, str) else _pair(layer.padding)
        parts = ["conv", f"c{layer.out_channels}", f"k{_pair(layer.kernel_size)}", f"s{_pair(layer.stride)}", f"p{pad}"]
        if layer.dilation != (1, 1):
            parts.append(f"d{_pair(layer.dilation)}")
        if layer.groups != 1:
            parts.append(f"g{layer.groups}")
        if layer.weights is not None:
            parts.append("weights")
        elif layer.init != "random":
            parts.append(layer.init.replace(",", "+"))
    else:
        parts = [f"{layer.mode}pool", f"k{_pair(layer.kernel_size)}", f"s{_pair(pool_stride(layer))}", f"p{_pair(layer.padding)}"]
        if layer.dilation != (1, 1):
            parts.append(f"d{_pair(layer.dilation)}")
        if layer.ceil_mode:
            parts.append("ceil")
        if layer.unpool:
            parts.append("unpool")
    if exp.data.dataset != "cifar10":
        parts.append(exp.data.dataset)
    return "-".join([*parts, stamp])


def hparams(exp: Experiment) -> dict[str, Any]:
    """Flat ``section.key -> int | float | str | bool`` for TensorBoard's HParams dashboard."""
    out: dict[str, Any] = {"command": exp.command}
    for name, section in exp.sections().items():
        for f in fields(section):
            value = getattr(section, f.name)
            if value is None:
                value = "default"
            elif isinstance(value, tuple):
                value = "x".join(str(v) for v in value)
            out[f"{name}.{f.name}"] = value
    return out


def describe(p: Plan) -> str:
    """The module, its shapes and the arithmetic, as plain text (terminal and TensorBoard)."""
    lines = [f"module: {p.module}", f"input -> output: {p.input_shape} -> {p.output_shape} (C, H, W)"]
    lines += ["  " + line for line in p.arithmetic[:2]]
    lines += init_lines(p.exp)
    return "\n".join(lines)


def init_lines(exp: Experiment) -> list[str]:
    """Where a conv's weights come from, when not from PyTorch's default init."""
    layer = exp.layer
    if not isinstance(layer, ConvConfig):
        return []
    if layer.weights is not None:
        return [f"weights: loaded from {layer.weights}"]
    if layer.init != "random":
        return [f"weights: {', '.join(names(layer.init))} (one kernel per output channel; see kernels.py)"]
    return []


def _markdown_block(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def log_step(writer: RunWriter, p: Plan, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
    """Everything logged for one batch: input ``x`` (floats in [0, 1]) and layer output ``y``."""
    writer.images("input", x, step)
    writer.images(p.output_tag, reshape_view(y) if p.exp.command == "conv" else y, step)
    mean, std = torch.stack([y.mean(), y.std()]).tolist()
    writer.scalar("output/mean", mean, step)
    writer.scalar("output/std", std, step)
    if isinstance(p.exp.layer, PoolConfig) and p.exp.layer.unpool:
        writer.images("unpool", max_unpool(x, p.exp.layer), step)
    views, v = selected_views(p.exp), p.exp.views
    if "channels" in views:
        writer.images("channels", channel_view(y, v.images, v.scale, v.zoom), step)
    if "stats" in views:
        low, high = torch.stack([y.min(), y.max()]).tolist()
        writer.scalar("output/min", low, step)
        writer.scalar("output/max", high, step)
        writer.histogram("output/histogram", y, step)


def log_kernels(writer: RunWriter, p: Plan) -> None:
    """The conv's weights as images, once (they do not change during a run)."""
    if "kernels" in selected_views(p.exp):
        writer.images("kernels", kernel_view(p.module.weight, p.exp.views.scale, p.exp.views.zoom), 0)


def logged_tags(p: Plan) -> list[str]:
    """The image tags a run logs, the tutorial's first."""
    tags = ["input", p.output_tag]
    if isinstance(p.exp.layer, PoolConfig) and p.exp.layer.unpool:
        tags.append("unpool")
    return tags + [v for v in selected_views(p.exp) if v in ("channels", "kernels")]


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise :class:`Interrupted`, so a run can close its files.

    Only the first signal raises: later ones would cut short the close that keeps what was
    logged, so they are ignored until the run has closed. A signal that was ignored on entry
    (SIGINT in a background job) stays ignored. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not received:
            received.append(signum)
            raise Interrupted(signum, signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _closes_on_signals(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stop_signals_raise():
            return fn(*args, **kwargs)

    return wrapper


def _stopped(writer: RunWriter, summary: dict[str, Any], exc: BaseException) -> None:
    """A run stopped early: keep every step logged so far and say so, or leave nothing.

    Raises the error the user should see when it differs from ``exc`` (a write error).
    """
    steps, run_dir = summary["steps"], writer.run_dir
    if isinstance(exc, Interrupted):
        summary["stopped_by"] = exc.name
    elif isinstance(exc, OSError):
        summary["stopped_by"] = f"write error: {exc.strerror or exc}"
    else:
        summary["stopped_by"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    summary_saved = False
    with contextlib.suppress(OSError):  # already failing: the first error is the one to report
        writer.close()
    if steps == 0:
        writer.discard()
    else:
        with contextlib.suppress(OSError):
            writer.save_json(SUMMARY_FILE, summary)
            summary_saved = True
    marked = "summary.json marks the run incomplete" if summary_saved else "summary.json could not be updated"
    if isinstance(exc, Interrupted):
        kept = f"the {steps} step(s) logged stay readable in {run_dir} ({marked})"
        exc.detail = f"after {steps} of {summary['planned_steps']} step(s); " + (
            kept if steps else "nothing was logged yet, so nothing was kept"
        )
    elif isinstance(exc, OSError):
        # Events still queued for TensorBoard's writer thread are lost with the write, so
        # say "what was written", not a step count.
        kept = f"what was written before it stays readable there ({marked})" if steps else "nothing was kept"
        raise WriteError(
            f"cannot write to {run_dir}: {exc.strerror or exc}; {kept}; "
            "make room (or choose another --logdir) and run again"
        ) from exc


@_closes_on_signals
def run(exp: Experiment, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the experiment and log it; returns the run's summary (also saved as summary.json)."""
    reporter = reporter or SilentReporter()
    p = plan(exp)
    check_logdir(exp.run.logdir, exp.run.run_name)
    images = datasets.load(exp.data, exp.run.seed)
    if images.image_shape != p.input_shape:  # pragma: no cover - a dataset bug, not a user error
        raise RuntimeError(f"dataset {images.name} gave images of {images.image_shape}, expected {p.input_shape}")
    num_steps = count_steps(len(images), exp.data.batch_size, exp.data.max_batches)
    for note in images.notes:
        reporter.info(note)

    name = exp.run.run_name or default_run_name(exp)
    run_dir = create_run_dir(exp.run.logdir, name, explicit=exp.run.run_name is not None)
    writer = RunWriter(run_dir)
    summary: dict[str, Any] = {
        "status": "running",
        "command": exp.command,
        "run_dir": str(run_dir),
        "dataset": images.name,
        "split": images.split,
        "images": len(images),
        "steps": 0,
        "planned_steps": num_steps,
        "device": p.device,
        "input_shape": list(p.input_shape),
        "output_shape": list(p.output_shape),
        "tags": logged_tags(p),
    }
    steps_done = 0
    torch_threads = torch.get_num_threads()
    try:
        writer.save_text(CONFIG_FILE, dump_toml(exp))
        writer.save_json(SUMMARY_FILE, summary)
        writer.text("config", _markdown_block(dump_toml(exp)))
        writer.text("layer", _markdown_block(explain(exp.layer, p.input_shape).text()))
        writer.text("data", _markdown_block(images.describe()))
        writer.hparams(hparams(exp), ["output/mean", "output/std"])
        log_kernels(writer, p)

        reporter.info(describe(p))
        reporter.info(f"run: {run_dir}")
        module = p.module.to(p.device).eval()
        if p.device == "cpu":
            # A batch is too small to gain from intra-op threads, whose spin-waiting competes
            # with the writer's PNG encoders: on 2 busy cores, 2 threads made runs several
            # times slower (measured with bench/bench.py). Restored below.
            torch.set_num_threads(1)
        started = time.perf_counter()
        bs = exp.data.batch_size
        with reporter.progress(num_steps, f"{exp.command} {images.name}/{images.split}") as advance:
            for step in range(num_steps):
                batch = images.images[step * bs : (step + 1) * bs].contiguous().to(p.device)
                x = batch.float().div_(255)
                with torch.inference_mode():
                    y = module(x)
                log_step(writer, p, x, y, step)
                steps_done = step + 1
                advance()
        summary.update(status="complete", steps=steps_done, seconds=round(time.perf_counter() - started, 3))
        writer.close()  # every event is on disk before summary.json says "complete"
        writer.save_json(SUMMARY_FILE, summary)
    except BaseException as exc:
        summary.update(status="incomplete", steps=steps_done)
        _stopped(writer, summary, exc)
        raise
    finally:
        torch.set_num_threads(torch_threads)
    return summary

