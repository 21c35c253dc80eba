"""convlab's CLI as ``bench.py`` runs it: the real entry point, timed like the hand loop.

Imports exactly what a convlab run imports, records when that is done, then calls
``convlab.cli.main``. ``--md5 JSON`` (first argument) registers the checksums of a
non-official CIFAR10 copy, as tests/conftest.py does: bench harness only.
"""

import time  # noqa: I001 - imports are timed

from convlab import cli, pipeline  # noqa: F401 - the modules a run imports (torch, tensorboard)

import json
import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    md5 = None
    if argv[:1] == ["--md5"]:
        md5, argv = json.loads(argv[1]), argv[2:]
    if "cifar10" in argv or md5:
        from torchvision.datasets import CIFAR10  # what a cifar10 run imports (convlab.data)

        if md5:
            CIFAR10.train_list = [[n, m] for n, m in sorted(md5.items()) if n.startswith("data_batch")]
            CIFAR10.test_list = [[n, m] for n, m in md5.items() if n == "test_batch"]
            CIFAR10.meta = {**CIFAR10.meta, "md5": md5["batches.meta"]}
    if os.environ.get("BENCH_MARK_FILE"):
        with open(os.environ["BENCH_MARK_FILE"], "w") as f:
            json.dump({"imported": time.time()}, f)
    sys.argv[1:] = argv
    cli.console_main()  # what the `convlab` command runs


if __name__ == "__main__":
    main()
