from pathlib import Path

import pytest

from convlab.config import dump_toml, read_config_file, resolve
from convlab.errors import ConfigError
from convlab.stages import ConvConfig, PoolConfig
from convlab.values import parse_pair


@pytest.mark.parametrize(
    "raw, expected",
    [(3, (3, 3)), ("3", (3, 3)), ("3x5", (3, 5)), (" 2 X 4 ", (2, 4)), ([1, 2], (1, 2)), ("same", "same")],
)
def test_parse_pair(raw, expected):
    assert parse_pair(raw, "padding", words=("same", "valid")) == expected


@pytest.mark.parametrize("raw", ["3x", "x3", "3x3x3", "abc", "", [1, 2, 3], [1, "2"], 2.5, True, "same"])
def test_parse_pair_rejects(raw):
    with pytest.raises(ConfigError, match="kernel_size"):
        parse_pair(raw, "kernel_size")


def test_defaults_match_the_tutorial():
    exp = resolve("conv")
    assert exp.layer == ConvConfig(out_channels=6, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))
    assert exp.data.dataset == "cifar10" and exp.data.split == "test" and exp.data.batch_size == 64
    assert exp.data.download is True and exp.run.logdir == "logs" and exp.run.device == "auto"
    pool = resolve("pool").layer
    assert pool == PoolConfig(kernel_size=(3, 3), stride=None, ceil_mode=False)


def test_precedence_defaults_file_flags(tmp_path: Path):
    f = tmp_path / "exp.toml"
    f.write_text('[conv]\nout_channels = 9\nkernel_size = "5x3"\n[data]\nbatch_size = 8\ndataset = "shapes"\n')
    exp = resolve("conv", {"conv": {"out_channels": 12, "stride": None}, "data": {"batch_size": None}}, f)
    assert exp.layer.out_channels == 12  # flag beats file
    assert exp.layer.kernel_size == (5, 3)  # file beats default
    assert exp.data.batch_size == 8  # unset flag (None) never overrides the file
    assert exp.layer.stride == (1, 1)  # default kept
    assert exp.data.dataset == "shapes"


def test_dump_toml_round_trips(tmp_path: Path):
    exp = resolve("conv", {"conv": {"kernel_size": "5x3", "padding": "same", "bias": False}, "run": {"run_name": "x"}})
    f = tmp_path / "saved.toml"
    f.write_text(dump_toml(exp))
    assert resolve("conv", config_file=f) == exp
    pool = resolve("pool", {"pool": {"ceil_mode": True, "stride": 2}})
    f.write_text(dump_toml(pool))
    assert resolve("pool", config_file=f) == pool


@pytest.mark.parametrize(
    "text, message",
    [
        ("[conv]\nkernal_size = 3\n", "unknown key 'kernal_size'.*did you mean 'kernel_size'"),
        ("[dta]\nbatch_size = 3\n", "unknown key 'dta'.*did you mean 'data'"),
        ("[conv]\nout_channels = 'six'\n", "conv.out_channels: expected an integer"),
        ("[conv]\nbias = 1\n", "conv.bias: expected true or false"),
        ("[conv]\nkernel_size = 2.5\n", "conv.kernel_size"),
        ("[conv\n", "not valid TOML"),
        ("[pool]\nkernel_size = 3\n", r"has a \[pool\] section.*convlab pool --config"),
        ('command = "pool"\n', "is a 'pool' experiment"),
        ("conv = 3\n", "must be a .conv. table"),
        ("[data]\nbatch_size = 0\n", "batch_size must be at least 1"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        resolve("conv", config_file=f)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "nope.toml", "conv")


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("conv", {"kernel_size": 0}, "kernel_size must be at least 1"),
        ("conv", {"stride": "0"}, "stride must be at least 1"),
        ("conv", {"padding": -1}, "padding must be 0 or more"),
        ("conv", {"dilation": "1x0"}, "dilation must be at least 1"),
        ("conv", {"out_channels": 0}, "out_channels must be at least 1"),
        ("conv", {"groups": 4}, "groups=4 must divide out_channels=6"),
        ("conv", {"padding_mode": "mirror"}, "unknown padding_mode 'mirror'"),
        ("conv", {"padding": "same", "stride": 2}, "padding 'same' needs stride 1"),
        ("pool", {"padding": 2}, "pool padding 2x2 is too large for kernel 3x3"),
        ("data", {"split": "val"}, "unknown split 'val'"),
        ("data", {"max_batches": 0}, "max_batches must be at least 1"),
        ("run", {"device": "gpu"}, "unknown device 'gpu'"),
        ("run", {"run_name": "../escape"}, "not allowed"),
        ("run", {"run_name": "/abs"}, "not allowed"),
        ("run", {"run_name": "a/b"}, "not allowed"),
        ("run", {"run_name": ".."}, "not allowed"),
    ],
)
def test_validation(section, values, message):
    command = "pool" if section == "pool" else "conv"
    with pytest.raises(ConfigError, match=message):
        resolve(command, {section: values})


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["config-0.1.0-conv.toml", "config-0.1.0-pool.toml"])
def test_a_config_saved_by_0_1_0_still_loads_and_saves_the_same(name: str):
    # Written by `convlab conv/pool` of release 0.1.0 (a run's config.toml): it must repeat that run.
    path = FIXTURES / name
    command = "conv" if name.endswith("conv.toml") else "pool"
    exp = resolve(command, config_file=path)
    assert exp.data.dataset == "shapes" and exp.data.batch_size == 4 and exp.run.run_name == command[0]
    assert dump_toml(exp) == path.read_text()


def test_a_0_1_0_config_runs_again(run_cli, tmp_path: Path):
    r = run_cli("conv", "--config", FIXTURES / "config-0.1.0-conv.toml", "--run-name", "again", "-q")
    assert r.code == 0, r.err
    saved = (tmp_path / "logs" / "again" / "config.toml").read_text()
    assert saved == (FIXTURES / "config-0.1.0-conv.toml").read_text().replace('run_name = "c"', 'run_name = "again"')


@pytest.mark.parametrize(
    "args, message",
    [
        (("--run-name", "nl\n"), "run name 'nl\\n' is not allowed"),
        (("--device", "cpu\n"), "unknown device 'cpu\\n'"),
        (("--stride", "1" + "0" * 5000), "conv.stride: 100000000000... (5001 digits) is far too large"),
        (("--kernel", "3x" + "9" * 40), "is far too large"),
        (("--logdir", "a" * 300), "a name in it is 300 bytes long"),
        (("--data-dir", "d/" + "b" * 256 + "/c"), "a name in it is 256 bytes long"),
        (("--weights", "w" * 256 + ".pt"), "--weights: a name in it is 259 bytes long"),
    ],
)
def test_hostile_values_are_one_line_errors(run_cli, tmp_path: Path, args, message):
    from conftest import assert_user_error

    assert_user_error(run_cli("conv", "--dataset", "shapes", *args), message)
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b'\xef\xbb\xbfcommand = "conv"\n', "starts with a byte-order mark (BOM)"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deep"),
        (b"[data]\nbatch_size = 1" + b"0" * 5000 + b"\n", "holds a value convlab cannot read"),
        (b"[data]\ndataset = \"\xff\"\n", "it is not UTF-8 text"),
        (b"#" * ((1 << 20) + 1), "is over 1 MiB"),
    ],
)
def test_config_files_that_are_no_experiment(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "x.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve("conv", config_file=path)


def test_a_device_or_pipe_is_no_config_file(tmp_path: Path):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="is not a regular file"):
            resolve("conv", config_file=path)


def test_paths_that_toml_cannot_hold_are_refused():
    with pytest.raises(ConfigError, match=r"--data-dir x\\xff is not valid UTF-8"):
        resolve("conv", {"data": {"data_dir": "x\udcff"}})
    with pytest.raises(ConfigError, match="--logdir is empty"):
        resolve("conv", {"run": {"logdir": " "}})
    with pytest.raises(ConfigError, match="holds a NUL character"):
        resolve("conv", {"data": {"data_dir": "a\0b"}})


@pytest.mark.parametrize("data_dir", ["new\nline", "esc\x1b[31m", "tab\tand\\back\"quote", "del\x7f", "é ü 漢"])
def test_every_saved_config_reads_back(tmp_path: Path, data_dir: str):
    exp = resolve("conv", {"data": {"data_dir": data_dir}})
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(exp), encoding="utf-8")
    again = resolve("conv", config_file=path)
    assert again == exp and again.data.data_dir == data_dir
