"""convlab board: the real TensorBoard server, checked over HTTP and in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from convlab.board import MIN_IMAGE_SAMPLES, image_samples, logged_steps
from convlab.runs import SUMMARY_FILE, write_summary

from conftest import load_events, only_run

# More steps than the 10 images per tag TensorBoard keeps by default, so a board that does
# not ask for more shows fewer steps and the checks below fail.
STEPS = 13
TAGS = ("input", "output")
START_TIMEOUT = 60.0
LOAD_TIMEOUT = 60.0

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1400,1000",
)

# Every <img> on the page, through the shadow roots of TensorBoard's web components.
RENDERED_IMAGES_JS = """
const found = [];
function walk(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'IMG') {
      found.push({src: el.src, width: el.naturalWidth, height: el.naturalHeight, complete: el.complete});
    }
    if (el.shadowRoot) walk(el.shadowRoot);
  }
}
walk(document);
return found;
"""
# The step slider of every image card (a paper-slider inside a tf-image-loader); with a
# value, moves them all to that step first.
STEP_SLIDERS_JS = """
const step = arguments[0];
const sliders = [];
(function walk(root, host) {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'PAPER-SLIDER' && host === 'TF-IMAGE-LOADER') {
      if (step !== null) el.value = step;
      sliders.push({min: el.min, max: el.max, value: el.value});
    }
    if (el.shadowRoot) walk(el.shadowRoot, el.tagName);
  }
})(document, null);
return sliders;
"""


# ----------------------------------------------------------------------------- helpers


@dataclass
class Board:
    process: subprocess.Popen
    url: str
    out: list[str]
    err: list[str]
    readers: list[threading.Thread]

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C, as a user stops it; returns the exit code once all its output is read."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=timeout)
        return code


def _unavailable(reason: str) -> None:
    """Outside CI a missing browser skips the test; in CI (CI=true) it is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
    pytest.skip(reason)


def _board_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "convlab", "board", *args]


@contextmanager
def start_board(logdir: Path, *args: str) -> Iterator[Board]:
    """``convlab board`` as a real subprocess on a free loopback port; killed if still running."""
    process = subprocess.Popen(
        _board_command("--logdir", str(logdir), "--port", "0", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    ready: queue.Queue[str] = queue.Queue()

    def read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if line.startswith("open "):
                ready.put(line.split()[1])

    readers = [threading.Thread(target=read, args=a, daemon=True) for a in ((process.stdout, out), (process.stderr, err))]
    for reader in readers:
        reader.start()
    try:
        try:
            url = ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"convlab board printed no URL in {START_TIMEOUT}s: {''.join(out + err)}")
        yield Board(process, url, out, err, readers)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for reader in readers:
            reader.join(timeout=5)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def get_json(url: str):
    return json.loads(get(url))


def wait_for(what: str, check, timeout: float = LOAD_TIMEOUT):
    """Poll ``check()`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def logged_images(run_dir: Path) -> dict[str, dict[int, bytes]]:
    """tag -> step -> the PNG bytes in the event file, read with TensorBoard's own loader."""
    acc = load_events(run_dir)
    return {tag: {ev.step: ev.encoded_image_string for ev in acc.Images(tag)} for tag in acc.Tags()["images"]}


def chromium(user_data_dir: Path):
    """A headless Chromium driven by Selenium through Debian's chromedriver (nothing downloaded)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        _unavailable("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never looks for, or downloads, a driver.
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def rendered(driver) -> list[dict]:
    """The TensorBoard images on the page that have loaded, once there is one per tag."""
    found = driver.execute_script(RENDERED_IMAGES_JS)
    done = [i for i in found if "/individualImage" in i["src"] and i["complete"] and i["width"] > 0]
    return done if len(done) >= len(TAGS) else []


def shown_steps(images: list[dict], logged: dict[str, dict[int, bytes]]) -> dict[str, int]:
    """tag -> step of each image on the page, found by its bytes among the run's PNGs."""
    shown = {}
    for image in images:
        png = get(image["src"])
        match = [(tag, step) for tag, steps in logged.items() for step, data in steps.items() if data == png]
        assert match, f"an image on the page is not one of the run's: {image['src']}"
        assert (image["width"], image["height"]) == Image.open(io.BytesIO(png)).size
        tag, step = match[0]
        shown[tag] = step
    return shown


def processes_reading(logdir: Path) -> list[str]:
    """Command lines of live processes that name ``logdir`` (Linux /proc; [] elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(logdir) in text:
            found.append(text)
    return found


def free_port_in_use() -> socket.socket:
    """A listening loopback socket: its port is busy for as long as the socket is open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def logdir(run_cli, tmp_path: Path) -> Path:
    """One conv run of STEPS steps on the built-in shapes dataset, the tutorial's two tags only
    (the extra views have their own tests; here every card must have the same STEPS steps)."""
    r = run_cli("conv", "--dataset", "shapes", "--batch-size", "8", "--max-batches", STEPS, "--views", "none",
                "--device", "cpu", "--logdir", tmp_path / "logs", "--run-name", "shapes-run")
    assert r.code == 0, r.err
    return tmp_path / "logs"


# ----------------------------------------------------------------------------- tests


def test_every_run_ends_with_the_board_and_tensorboard_lines(logdir: Path, run_cli) -> None:
    r = run_cli("pool", "--dataset", "shapes", "--max-batches", 2, "--logdir", logdir, "--device", "cpu")
    assert r.code == 0, r.err
    lines = r.out.rstrip("\n").splitlines()
    assert lines[-2] == f"view it: convlab board --logdir {logdir}"
    assert lines[-1] == f"     or: tensorboard --logdir {logdir} --samples_per_plugin images={MIN_IMAGE_SAMPLES}"


def test_image_samples_cover_the_longest_run(tmp_path: Path) -> None:
    runs = []
    for name, steps in (("short", 3), ("long", MIN_IMAGE_SAMPLES + 57), ("foreign", None)):
        run = tmp_path / name
        run.mkdir()
        if steps is not None:
            (run / SUMMARY_FILE).write_text(json.dumps({"steps": steps, "planned_steps": steps}))
        runs.append(run)
    assert image_samples(runs[:1]) == MIN_IMAGE_SAMPLES
    assert image_samples(runs) == MIN_IMAGE_SAMPLES + 57
    (runs[0] / SUMMARY_FILE).write_text("{not json")
    assert logged_steps(runs[0]) == 0


@pytest.mark.parametrize("claimed", [10**30, -5, 2**63, True])
def test_an_absurd_summary_is_ignored(tmp_path: Path, claimed) -> None:
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"steps": claimed, "planned_steps": claimed}))
    assert logged_steps(tmp_path) == 0
    assert image_samples([tmp_path]) == MIN_IMAGE_SAMPLES


def test_board_reads_the_summary_a_run_writes(tmp_path: Path) -> None:
    # One summary format (runs.py) for the pipeline that writes it and the board that reads it.
    write_summary(tmp_path, {"steps": 12, "planned_steps": 40, "status": "running"})
    assert (tmp_path / SUMMARY_FILE).is_file()
    assert logged_steps(tmp_path) == 40


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_no_runs_is_one_line_and_exit_2(kind: str, tmp_path: Path, run_cli) -> None:
    target = tmp_path / "logs"
    if kind == "empty":
        (target / "not-a-run").mkdir(parents=True)
        (target / "not-a-run" / "config.toml").write_text("")
    elif kind == "file":
        target.write_text("")
    r = run_cli("board", "--logdir", target, "--port", "0")
    assert r.code == 2
    assert r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith("convlab: error: ")
    assert str(target) in r.err


def test_busy_port_is_one_line_and_exit_2(logdir: Path) -> None:
    with free_port_in_use() as sock:
        port = sock.getsockname()[1]
        done = subprocess.run(
            _board_command("--logdir", str(logdir), "--port", str(port)), capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"convlab: error: port {port} on 127.0.0.1 is already in use")


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])  # RFC 5737, RFC 2606: never this machine
def test_an_address_it_cannot_serve_on_is_one_line_and_exit_2(host: str, logdir: Path) -> None:
    done = subprocess.run(
        _board_command("--logdir", str(logdir), "--host", host, "--port", "0"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"convlab: error: cannot serve on {host}:0: ")


@pytest.mark.slow
def test_board_serves_every_step_and_chromium_renders_the_images(logdir: Path, tmp_path: Path) -> None:
    run_dir = only_run(logdir)
    run = run_dir.name
    logged = logged_images(run_dir)
    assert sorted(logged) == sorted(TAGS)
    assert all(sorted(steps) == list(range(STEPS)) for steps in logged.values())

    with start_board(logdir) as tb:
        assert tb.url.startswith("http://127.0.0.1:"), "loopback by default"
        assert "1 run(s)" in tb.out[0]

        # TensorBoard's HTTP API: the run, its image tags, and every step of each, byte for byte.
        assert wait_for("the run in /data/runs", lambda: run in get_json(tb.url + "data/runs"))
        tags = wait_for("the run's image tags", lambda: get_json(tb.url + "data/plugin/images/tags").get(run))
        assert sorted(tags) == sorted(TAGS)
        for tag in TAGS:
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            entries = wait_for(
                f"all {STEPS} steps of {tag!r}",
                lambda query=query: (e := get_json(f"{tb.url}data/plugin/images/images?{query}")) and len(e) >= STEPS and e,
            )
            assert [e["step"] for e in entries] == list(range(STEPS))
            for entry in entries:
                served = get(f"{tb.url}data/plugin/images/individualImage?{entry['query']}")
                assert served == logged[tag][entry["step"]], f"{tag} step {entry['step']}"

        # The images dashboard in a real browser: one rendered <img> per tag, showing the
        # run's own PNGs; every card's step slider spans all steps, and moving it shows them.
        driver = chromium(tmp_path / "chromium-profile")
        try:
            driver.set_page_load_timeout(60)
            driver.get(tb.url + "#images")
            last = wait_for("the images dashboard to render every tag's image", lambda: rendered(driver))
            sliders = driver.execute_script(STEP_SLIDERS_JS, None)
            assert len(sliders) == len(TAGS)
            assert all((s["min"], s["max"], s["value"]) == (0, STEPS - 1, STEPS - 1) for s in sliders), sliders
            screenshot = tmp_path / "board-images.png"
            assert driver.save_screenshot(str(screenshot))

            driver.execute_script(STEP_SLIDERS_JS, 0)
            first = wait_for(
                "the cards to show step 0",
                lambda: (found := rendered(driver)) and {u["src"] for u in found}.isdisjoint(u["src"] for u in last) and found,
            )
        finally:
            driver.quit()
        if os.environ.get("CONVLAB_ARTEFACTS"):
            artefacts = Path(os.environ["CONVLAB_ARTEFACTS"])
            artefacts.mkdir(parents=True, exist_ok=True)
            shutil.copy(screenshot, artefacts / screenshot.name)
        assert screenshot.stat().st_size > 10_000
        assert shown_steps(last, logged) == {tag: STEPS - 1 for tag in TAGS}
        assert shown_steps(first, logged) == {tag: 0 for tag in TAGS}

        # Ctrl-C stops the board cleanly and frees the port.
        assert tb.stop() == 0, "".join(tb.err)
        assert tb.out[-1] == "convlab board: stopped\n"
        assert "Traceback" not in "".join(tb.err)
        # ... with nothing it started (TensorBoard's data server) left running.
        wait_for("no process left reading the logdir", lambda: not processes_reading(logdir), timeout=15)
        with socket.socket() as sock:
            # As servers do: connections the board closed may linger in TIME_WAIT, a listener may not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", urllib.parse.urlparse(tb.url).port))
            sock.listen()


# Every custom-scalars chart card: its title, what its regexes matched, and how many SVG paths it drew.
CUSTOM_SCALAR_CARDS_JS = """
const out = [];
(function walk(root, card) {
  for (const el of root.querySelectorAll('*')) {
    let c = card;
    if (el.tagName === 'TF-CUSTOM-SCALAR-MULTI-LINE-CHART-CARD') { c = {title: el.title, paths: 0, matches: ''}; out.push(c); }
    if (c && el.tagName.toLowerCase() === 'path' && (el.getAttribute('d') || '').length > 20) c.paths += 1;
    if (c && el.childElementCount === 0 && (el.textContent || '').trim().startsWith('Matches')) c.matches = el.textContent.trim();
    if (el.shadowRoot) walk(el.shadowRoot, c);
  }
})(document, null);
return out;
"""


@pytest.mark.slow
def test_chromium_renders_a_training_runs_charts_and_side_by_side_kernels(run_cli, tmp_path: Path) -> None:
    """A training run on the board: the Custom Scalars tab draws train and test on one chart (and every
    stage's gradient norm on another), and the Images tab shows the kernels' step 0 | now | change picture."""
    from convlab.train.run import LAYOUT

    r = run_cli("train", "Conv2d(3, 4, 5, stride=4)", "Flatten()", "Linear(196, 10)", "--dataset", "shapes", "--batch-size", "8",
                "--max-steps", "6", "--eval-every", "3", "--eval-batches", "1", "--snapshot-every", "3", "--device", "cpu", "-q")
    assert r.code == 0, r.err
    logdir = tmp_path / "logs" / "train"
    run_dir = only_run(logdir)
    kernels = logged_images(run_dir)["01-conv2d/kernels"]
    assert sorted(kernels) == [0, 3, 6]
    charts = {title: tags for charts in LAYOUT.values() for title, tags in charts.items()}

    with start_board(logdir) as tb:
        driver = chromium(tmp_path / "chromium-profile")
        try:
            driver.set_page_load_timeout(60)
            driver.get(tb.url + "#custom_scalars")
            cards = wait_for(
                "every custom scalars chart drawn with what it matched",
                lambda: (found := driver.execute_script(CUSTOM_SCALAR_CARDS_JS)) and len(found) == len(charts)
                and all(c["matches"] not in ("", "Matches (0)") and c["paths"] for c in found) and found,
            )
            # Two tags each: train/ and test/ loss or accuracy; the two stages' gradient norms and update ratios.
            assert {c["title"]: c["matches"] for c in cards} == {title: "Matches (2)" for title in charts}
            driver.save_screenshot(str(tmp_path / "board-train-scalars.png"))

            driver.get(tb.url + "#images")

            def kernels_shown() -> list[dict]:
                found = [i for i in driver.execute_script(RENDERED_IMAGES_JS)
                         if "/individualImage" in i["src"] and i["complete"] and i["width"] > 0]
                return [i for i in found if get(i["src"]) == kernels[6]]

            (picture,) = wait_for("the side-by-side kernels picture, at the last step", kernels_shown)
            driver.save_screenshot(str(tmp_path / "board-train-images.png"))
        finally:
            driver.quit()
    # Three panels side by side (step 0 | step 6 | the change), at the logged picture's own size.
    assert (picture["width"], picture["height"]) == Image.open(io.BytesIO(kernels[6])).size
    assert picture["width"] > 3 * picture["height"]
