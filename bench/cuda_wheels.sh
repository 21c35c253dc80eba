#!/usr/bin/env bash
# Run HERE, on a machine that reaches PyPI, before bench/cuda_check.sh goes to a lent GPU machine.
#
# The GPU machines have no network. Their image's python3 (Python 3.12) already holds torch,
# torchvision, tensorboard, typer, numpy, pillow, pytest and hypothesis; convlab's other needs are
# not there. This downloads them, as x86-64 CPython 3.12 wheels without their own dependencies,
# into .whl/ at the repository root (git-ignored), about 21 MB; the run
# carries that folder (carry: [".whl"]) and cuda_check.sh installs it offline.
#
# The list: convlab's dependencies the image lacks (isal, google-crc32c, captum) and what the
# notebook bench and tests need (nbclient, nbformat, ipykernel, ipywidgets), with everything those
# need, pinned to the versions this project's venv runs. Left out: selenium and ruff (the dev
# extra's browser test and linter; no `pytest -m cuda` test or bench part uses them).
#
#     bash bench/cuda_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PIP=${PIP:-.venv/bin/python -m pip}
[ -x .venv/bin/python ] || PIP="python3 -m pip"

WHEELS=(
  isal==1.9.1 google-crc32c==1.9.0 captum==0.9.0
  nbclient==0.11.0 nbformat==5.11.1 ipykernel==7.4.0 ipywidgets==8.1.9
  annotated-types==0.8.0 asttokens==3.0.2 comm==0.2.3 debugpy==1.8.22 executing==2.3.0 fastjsonschema==2.22.3
  ipython==9.19.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  jupyter-client==8.10.0 jupyter-core==5.9.1 jupyterlab-widgets==3.0.17 matplotlib-inline==0.2.2 nest-asyncio2==1.7.4
  parso==0.8.7 pexpect==4.9.0 platformdirs==4.14.9 prompt-toolkit==3.0.53 ptyprocess==0.7.0 pure-eval==0.2.4
  pydantic==2.14.4 pydantic-core==2.50.5 pyzmq==27.3.0 referencing==0.37.0 rpds-py==2026.9.1 stack-data==0.6.3
  tornado==6.6.1 traitlets==5.16.1 typing-inspection==0.4.5 tzdata==2026.6 wcwidth==0.9.5 widgetsnbextension==4.0.16
)

mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
$PIP download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl "${WHEELS[@]}"
echo "cuda_wheels: $(find .whl -name '*.whl' | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (carry it: carry [\".whl\"])"
