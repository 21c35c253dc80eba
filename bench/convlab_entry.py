"""convlab's CLI as ``bench.py`` runs it: the real entry point, timed like the hand loop.

Imports exactly what a convlab run imports, records when that is done, then runs the
``convlab`` command's entry point (``convlab.__main__.console_main``). ``--md5 JSON`` (first argument) registers the checksums of a
non-official CIFAR10 copy with ``convlab.data.register_checksums``, as tests/conftest.py
does: bench harness only.
"""

import time  # noqa: I001 - imports are timed

# The command's entry module first, as the `convlab` script loads it: it sets the process
# policy (one OpenBLAS thread) before numpy is imported.
from convlab.__main__ import console_main
from convlab import cli, pipeline  # noqa: F401 - the modules a run imports (torch, tensorboard)

import json
import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    md5 = None
    if argv[:1] == ["--md5"]:
        md5, argv = json.loads(argv[1]), argv[2:]
    if md5:
        from convlab.data import register_checksums

        register_checksums("cifar10", md5)
    if os.environ.get("BENCH_MARK_FILE"):
        with open(os.environ["BENCH_MARK_FILE"], "w") as f:
            json.dump({"imported": time.time()}, f)
    sys.argv[1:] = argv
    console_main()  # what the `convlab` command runs


if __name__ == "__main__":
    main()
