"""The only module that talks to TensorBoard: one run's event file.

Images are logged as ``SummaryWriter.add_images`` logs them (same grid, same pixels, the same
``Summary.Image`` proto), but built with torch ops on the batch's device and PNG-encoded on a
small bounded thread pool, while events reach TensorBoard's own event-file writer in the order
they were logged. See ``bench/bench.py`` for what each choice saves.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import custom_scalars as custom_scalars_summary
from torch.utils.tensorboard.summary import histogram as histogram_summary
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torch.utils.tensorboard.summary import scalar as scalar_summary
from torch.utils.tensorboard.summary import text as text_summary
from torch.utils.tensorboard.writer import FileWriter

from convlab.errors import ConvlabError
from convlab.runs import remove_run_dir

# add_images' grid: 8 tiles per row, no padding between tiles.
GRID_COLUMNS = 8
# PNG encoding was most of a run's time (PIL at zlib level 6: ~24 ms a CIFAR10 grid, one
# thread). Rows "sub"-filtered with numpy and deflated by ISA-L at level 1 take ~1 ms, and the
# files stay within ~1.1x of PIL's size (measured in bench/bench.py). zlib is the fallback.
PNG_LEVEL = 1
# Scalars and texts logged behind a pending image wait for it (events stay in order); cap them.
MAX_PENDING_EVENTS = 256

try:
    from isal.isal_zlib import compress as _deflate
except ImportError:  # pragma: no cover - no isal wheel for this platform
    from zlib import compress as _deflate

class GraphNode(NamedTuple):
    """One node of a graph: its name ('/' groups nodes into boxes), what it is, the nodes it
    reads, the shape it gives, and a text shown beside it."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    text: str = ""


class WriteError(ConvlabError):
    """Writing the run failed (disk full, file-size limit, I/O error)."""


# ----------------------------------------------------------------------------- images


def image_grid(batch: torch.Tensor, ncols: int = GRID_COLUMNS) -> torch.Tensor:
    """A batch ``(N, C, H, W)`` as ``add_images`` draws it: uint8 ``(rows*H, cols*W, 3)``.

    uint8 batches are taken as they are; any other dtype as floats in [0, 1], converted the
    way TensorBoard does (float32, ×255, clipped, truncated to uint8). ``C`` is 1 (grey) or 3.
    Computed on the batch's device; the result is always a fresh tensor.
    """
    if batch.dim() != 4:
        raise ValueError(f"expected an image batch (N, C, H, W), got shape {tuple(batch.shape)}")
    n, c, h, w = batch.shape
    if c not in (1, 3) or n == 0:
        raise ValueError(f"an image batch needs 1 or 3 channels and at least one image, got shape {tuple(batch.shape)}")
    batch = batch.detach()
    if batch.dtype == torch.uint8:
        pixels = batch
    else:
        pixels = (batch.to(torch.float32) * 255).clamp_(0, 255).to(torch.uint8)
    if n == 1:  # one picture (a view): one copy to channels-last, no grid to fill
        return pixels[0].permute(1, 2, 0).expand(h, w, 3).contiguous()
    cols = min(ncols, n)
    rows = -(-n // cols)
    # Channels-last first, so the grid's own transpose moves whole W*3-byte rows (measured
    # about 1.3x faster than one 5-d permute of NCHW on the CPU).
    tiles = pixels.new_zeros(rows * cols, h, w, 3)
    tiles[:n] = pixels.permute(0, 2, 3, 1)  # broadcasts grey to 3 channels; empty cells stay black
    return tiles.view(rows, cols, h, w, 3).permute(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` -> an 8-bit RGB PNG, each row with the "sub" filter (PNG spec 9.2)."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type: sub (each byte minus the same channel of the pixel to its left)
    filtered[:, 1 : 1 + channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])  # wraps mod 256
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", _deflate(filtered, PNG_LEVEL)),
        _png_chunk(b"IEND", b""),
    ))


def image_summary(tag: str, pixels: np.ndarray) -> Summary:
    """The proto ``add_images`` writes, which TensorBoard's image plugin reads."""
    height, width, channels = pixels.shape
    image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encode_png(pixels))
    return Summary(value=[Summary.Value(tag=tag, image=image)])


# ----------------------------------------------------------------------------- histograms

HISTOGRAM_BINS = 64


def finite_histogram(tag: str, values: np.ndarray, bins: int = HISTOGRAM_BINS) -> Summary | None:
    """TensorBoard's histogram of the finite ``values``, for any floats: inf and NaN are left out
    (the pipeline counts them), so the range is always finite; None when no value is finite.

    ``bins`` equal bins between the min and max, as TensorBoard bins them; values so close
    together for their size that equal bins would be narrower than float64 can tell apart (a
    near-constant output past ~7e13) get as many distinct edges as there are, never an error.
    """
    finite = values if bool(np.isfinite(values).all()) else values[np.isfinite(values)]
    if finite.size == 0:
        return None
    try:
        return histogram_summary(tag, finite, bins=bins)
    except ValueError:  # "Too many bins for data range": the span is below 64 float64 steps
        low, high = float(finite.min()), float(finite.max())
        edges = np.unique(np.append(np.linspace(low, high, bins + 1), np.nextafter(high, np.inf)))
        return histogram_summary(tag, finite, bins=edges)


# ----------------------------------------------------------------------------- checksums

_fast_crc_installed = False


def _native_masked_crc32c() -> Callable[[bytes], int] | None:
    """TensorBoard's masked CRC32C of a record, in C (google-crc32c); None where there is no C one."""
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    if google_crc32c.implementation != "c":  # pragma: no cover - no wheel for this platform
        return None

    def masked_crc32c(data: bytes) -> int:
        x = google_crc32c.value(bytes(data))
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked_crc32c


def use_native_crc32c() -> bool:
    """Give tensorboard's event-file writer a C CRC32C, where google-crc32c provides one.

    TensorBoard (without TensorFlow) checksums every record in pure Python at ~0.25 µs a
    byte: for the 157-step CIFAR10 run (34 MB of PNGs) that is ~9 s of CPU holding the GIL
    (measured, bench/bench.py), more than everything else convlab does. The checksums, and so
    the files, are bit for bit the same.
    """
    global _fast_crc_installed
    if _fast_crc_installed:
        return True
    crc = _native_masked_crc32c()
    if crc is None:  # pragma: no cover - see above
        return False
    from tensorboard.summary.writer import record_writer

    record_writer.masked_crc32c = crc
    _fast_crc_installed = True
    return True


def read_events(run_dir: str | Path) -> Any:
    """A run read back with TensorBoard's own loader (``EventAccumulator``), every image, scalar,
    tensor and histogram kept: what TensorBoard shows is what the reader gets (the tests read
    every run back through it too).

    Its record reader checks every record's CRC32C in pure Python as the writer would: 16.6 s
    for a 157-step conv run of 45 MB, 0.27 s with the same C checksum the writer uses
    (measured); the checks, and what is read, are the same.
    """
    crc = _native_masked_crc32c()
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    if crc is not None:
        pywrap_tensorflow.masked_crc32c = crc
    guidance = {kind: 0 for kind in (event_accumulator.IMAGES, event_accumulator.SCALARS, event_accumulator.TENSORS,
                                     event_accumulator.HISTOGRAMS)}
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance=guidance)
    acc.Reload()
    return acc


# ----------------------------------------------------------------------------- writer


def _encode_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


_Item = Union[Summary, "Future[Summary]"]


class SharedBatch:
    """The batch that several writers log at one step (a sweep's input, logged by every run):
    its grid is built and PNG-encoded once, by the first writer that logs it, and the others
    write the same Summary. Set it to each step's batch; it holds that tensor until the next,
    so no other tensor can be mistaken for it."""

    def __init__(self) -> None:
        self.batch: torch.Tensor | None = None
        self._encoded: dict[str, Future[Summary]] = {}
        self._pending: set[Future[Summary]] = set()  # of every step: what writers may still wait for

    def set(self, batch: torch.Tensor) -> None:
        self.batch, self._encoded = batch, {}
        self._pending = {f for f in self._pending if not f.done()}

    def encoded(self, tag: str, encode: Callable[[], Future[Summary]]) -> Future[Summary]:
        if tag not in self._encoded:
            self._encoded[tag] = encode()
            self._pending.add(self._encoded[tag])
        return self._encoded[tag]

    def __contains__(self, item: object) -> bool:
        return item in self._pending


class RunWriter:
    """A run directory's event file, through TensorBoard's own event-file writer.

    ``images`` returns as soon as the grid is built; its PNG is encoded on a thread pool. At
    most ``max_in_flight`` encodes are pending at any time (``images`` waits for the oldest
    beyond that), so memory stays bounded by a few grids however many steps are logged. Events
    are written in the order they were logged, with the wall time of the call. An encode that
    fails raises its error from a later call, ``flush`` or ``close``. Use from one thread.
    """

    def __init__(self, run_dir: Path, *, max_in_flight: int | None = None, encode_workers: int | None = None):
        self.run_dir = Path(run_dir)
        use_native_crc32c()
        workers = encode_workers or _encode_workers()
        self.max_in_flight = max_in_flight or 2 * workers
        try:
            self._file = FileWriter(str(self.run_dir))
        except BaseException as exc:
            remove_run_dir(self.run_dir)
            if isinstance(exc, OSError):
                raise WriteError(
                    f"cannot write an event file in {self.run_dir.parent}/: {exc.strerror or exc}; "
                    "nothing was kept; make room there or choose another --logdir"
                ) from exc
            raise
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convlab-png")
        self._pending: deque[tuple[_Item, int | None, float]] = deque()
        self._in_flight = 0
        self._head_awaited = False  # the first pending event's encode is being waited for
        self._closed = False
        # Set by a sweep: grids of that batch are encoded once for every writer sharing it.
        self.shared: SharedBatch | None = None

    @property
    def in_flight(self) -> int:
        """Images logged whose PNG is not yet encoded and written."""
        return self._in_flight

    def images(self, tag: str, batch: torch.Tensor, step: int) -> None:
        """A batch (N, C, H, W) as one grid image, exactly as ``SummaryWriter.add_images`` logs it."""
        walltime = time.time()
        self._check_open()

        def encode() -> Future[Summary]:
            return self._pool.submit(image_summary, tag, image_grid(batch).cpu().numpy())

        shared = self.shared is not None and batch is self.shared.batch
        self._enqueue(self.shared.encoded(tag, encode) if shared else encode(), step, walltime)

    def image(self, tag: str, pixels: np.ndarray, step: int) -> None:
        """One (H, W, 3) uint8 picture, logged losslessly (e.g. a frame of an animation)."""
        walltime = time.time()
        self._check_open()
        self._enqueue(self._pool.submit(image_summary, tag, np.ascontiguousarray(pixels, dtype=np.uint8)), step, walltime)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._check_open()
        self._enqueue(scalar_summary(tag, value), step, time.time())

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        self._check_open()
        self._enqueue(text_summary(tag, markdown), step, time.time())

    def hparams(self, hparams: Mapping[str, Any], metrics: list[str], first: Sequence[str] = ()) -> None:
        """Write the HParams plugin's session records into this run (not a sub-run).

        The HParams tab sorts its columns by name after those marked ``differs`` and shows the
        first five (TensorBoard 2.x's backend and dashboard): ``first`` are marked, so what the user
        chose (or what a sweep varies) are the columns shown. ``metrics`` are shown in this order.
        """
        from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

        self._check_open()
        for summary in hparams_summary(dict(hparams), {m: 0.0 for m in metrics}):
            value = summary.value[0]
            data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
            if first and data.HasField("experiment"):
                for info in data.experiment.hparam_infos:
                    info.differs = info.name in first
                value.metadata.plugin_data.content = data.SerializeToString()
            self._enqueue(summary, None, time.time())

    def custom_scalars(self, layout: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        """TensorBoard's Custom Scalars layout: ``{category: {chart title: [tag regexes]}}``, each chart
        one plot of every scalar tag its regexes match (re.match), e.g. train and test loss together."""
        self._check_open()
        charts = {category: {title: ["Multiline", list(tags)] for title, tags in charts.items()} for category, charts in layout.items()}
        self._enqueue(custom_scalars_summary(charts), None, time.time())

    def graph(self, nodes: Sequence[GraphNode]) -> None:
        """A model's graph for TensorBoard's Graphs tab: the ``GraphDef`` that
        ``SummaryWriter.add_graph`` writes, built from nodes the caller knows (a stack's stages and
        their shapes) rather than by ``torch.jit.trace``, whose imports alone take over a second."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.graph_pb2 import GraphDef
        from tensorboard.compat.proto.versions_pb2 import VersionDef
        from torch.utils.tensorboard._proto_graph import node_proto

        self._check_open()
        self._write_all()  # after everything logged before it: events stay in order
        protos = [node_proto(n.name, op=n.op, input=list(n.inputs), outputsize=n.shape, attributes=n.text) for n in nodes]
        graph = GraphDef(node=protos, versions=VersionDef(producer=22))
        self._file.add_event(Event(graph_def=graph.SerializeToString()), None, time.time())

    def flush(self) -> None:
        """Wait for every pending image and put everything logged so far on disk."""
        self._check_open()
        self._write_all()
        self._file.flush()

    def close(self) -> None:
        """Write everything pending, then close the event file. Idempotent.

        If an encode failed, every other event is still written and the error is raised.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._write_all()
        finally:
            self._pool.shutdown(wait=True)
            self._file.close()

    def discard(self) -> None:
        """Close and remove this run's directory (only ever one that this writer created)."""
        try:
            if not self._closed:
                self._closed = True
                for item, _, _ in self._pending:
                    if isinstance(item, Future) and not (self.shared is not None and item in self.shared):
                        item.cancel()  # not one another writer waits for
                self._pending.clear()
                self._in_flight = 0
                self._pool.shutdown(wait=True)
                self._file.close()
        finally:
            remove_run_dir(self.run_dir)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """The distribution of ``values`` in 64 equal bins between their min and max (any float
        tensor: see :func:`finite_histogram`).

        Not SummaryWriter's default exponential buckets (hundreds per step for a conv
        output): 64 equal bins make a ~9x smaller event, and TensorBoard re-bins to ~30
        for display anyway.
        """
        self._check_open()
        # A copy, binned on the encoder threads like the PNGs: TensorBoard's histogram (float64
        # numpy, ~3 ms for a CIFAR10 conv batch) would otherwise hold up every step.
        values = values.detach().flatten().float().cpu().numpy().copy()
        self._enqueue(self._pool.submit(finite_histogram, tag, values), step, time.time())

    # -- in-order writing

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writer of {self.run_dir} is closed")

    def _enqueue(self, item: _Item, step: int | None, walltime: float) -> None:
        if isinstance(item, Future):
            self._in_flight += 1
        self._pending.append((item, step, walltime))
        while self._pending and (
            self._ready(self._pending[0][0])
            or self._in_flight > self.max_in_flight
            or len(self._pending) > MAX_PENDING_EVENTS
        ):
            self._write_next()

    @staticmethod
    def _ready(item: _Item) -> bool:
        return not isinstance(item, Future) or item.done()

    def _write_next(self) -> None:
        # Taken off the queue once written, not before: a signal raised while this waits for an
        # encode (or for TensorBoard's own queue) leaves the event queued for close() to write,
        # never lost (a sweep's stopped run once missed the step it had counted). It stops
        # counting as in flight once awaited, as before.
        item, step, walltime = self._pending[0]
        if isinstance(item, Future) and not self._head_awaited:
            self._in_flight -= 1
            self._head_awaited = True
        try:
            summary = item.result() if isinstance(item, Future) else item  # an encode's error is raised here
            if summary is not None:  # None: a histogram of no finite value
                self._file.add_summary(summary, step, walltime)
        except Exception:  # that encode's or a write's error: this event goes with it, and the rest go on
            self._pending.popleft()
            self._head_awaited = False
            raise
        self._pending.popleft()
        self._head_awaited = False

    def _write_all(self) -> None:
        error: BaseException | None = None
        while self._pending:
            try:
                self._write_next()
            except Exception as exc:  # keep writing the rest; the first error is raised below
                error = error or exc
        if error is not None:
            raise error
