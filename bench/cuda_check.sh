#!/usr/bin/env bash
# The one prepared script a session with a lent GPU machine runs first (README, Development:
# "A GPU session"). From the repository root:
#
#     bash bench/cuda_check.sh
#
# 1. the GPU and the Python there (nvidia-smi; torch's CUDA); stops at once if PyTorch sees no GPU;
# 2. a Python: a carried .venv that imports torch with CUDA, else a new .venv. The GPU machines
#    have no network: their image's python3 holds torch, tensorboard, typer, pytest..., so the new
#    venv sees that python's packages (through a .pth file: that python is itself a venv, whose
#    packages --system-site-packages would not show) and installs convlab's missing ones offline
#    from the carried wheels in .whl/ (bench/cuda_wheels.sh), then convlab itself (editable).
#    Where there is no .whl/, `pip install -e '.[dev]'` as usual (a machine with a network);
# 3. `pytest -m cuda -q`: every CUDA test, each comparing a command's CUDA run with its CPU run;
# 4. `bench/bench.py --device cuda --quick`, in three parts, each with its own results JSON.
#
# Everything it prints goes to $OUT/cuda_check.log too ($OUT: the device tool's folder that comes
# back; bench/results/cuda-check/ where it is unset), with the bench's JSONs and nvidia-smi's
# report beside it: 5 files. Each step has a time limit, and all of them together stop within
# CUDA_CHECK_BUDGET_S seconds (default 540: a device command may run 600).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
budget=${CUDA_CHECK_BUDGET_S:-540}
out=${OUT:-bench/results/cuda-check}
mkdir -p "$out"
exec > >(tee "$out/cuda_check.log") 2>&1
export PYTHONUNBUFFERED=1
failed=()

step() { echo; echo "== $(date +%H:%M:%S) (+$(($(date +%s) - started)) s) $*"; }
# left SECONDS_WANTED: what a step may take, no more than the budget has left.
left() {
  local rest=$((budget - ($(date +%s) - started)))
  [ "$1" -lt "$rest" ] && rest=$1
  echo $((rest > 0 ? rest : 1))
}

step "the GPU"
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" | head -20 || echo "cuda_check: no nvidia-smi"
uname -m

step "Python"
python=${PYTHON:-python3}
cuda_ok='import torch; assert torch.cuda.is_available(), "no GPU"; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
if [ -x .venv/bin/python ] && .venv/bin/python -c "$cuda_ok" 2>/dev/null; then
  echo "using the carried .venv"
else
  "$python" -c "$cuda_ok" || { echo "cuda_check: $python has no torch with a CUDA GPU; nothing to check"; exit 1; }
  rm -rf .venv
  "$python" -m venv --system-site-packages .venv || exit 1
  base=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"]); print(sysconfig.get_paths()["platlib"])' | sort -u)
  "$python" -c 'import sys, sysconfig; sys.exit(sys.prefix == sys.base_prefix)' && \
    echo "$base" >"$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/image-site.pth"
  pip=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir)
  # convlab itself: editable where the venv's build tools allow it offline; PYTHONPATH=src below
  # serves pytest and the bench either way, so a failure here is only a note.
  editable() { "${pip[@]}" --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "cuda_check: note: convlab not installed editable; using PYTHONPATH=src"; }
  if [ -d .whl ]; then
    "${pip[@]}" --no-index --no-deps .whl/*.whl || failed+=("installing .whl")
    editable
  else
    timeout "$(left 240)" "${pip[@]}" --timeout 15 -e '.[dev]' || {
      failed+=("pip install -e '.[dev]' (no network and no .whl/? see bench/cuda_wheels.sh)")
      editable
    }
  fi
fi
py=.venv/bin/python
export PYTHONPATH=src  # convlab from this tree even if its editable install failed
"$py" -c "$cuda_ok" || exit 1
"$py" -m pip check 2>&1 | grep -v -i "^nvidia\|^torch " | head -20
missing=$("$py" - <<'EOF'
import importlib.util
need = ["convlab", "captum", "isal", "google_crc32c", "tensorboard", "typer", "pytest", "hypothesis", "nbclient", "ipykernel"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
[ -n "$missing" ] && { echo "cuda_check: missing modules: $missing"; failed+=("missing modules: $missing"); }

step "pytest -m cuda -q"
timeout "$(left 150)" "$py" -m pytest -m cuda -q -p no:cacheprovider -rs --durations=15 || failed+=("pytest -m cuda")

# The bench's parts, each against its own time limit: one part stuck or slow loses itself only.
bench_part() {  # NAME SECONDS LAYERS
  step "bench/bench.py --device cuda --quick --layers $3"
  timeout "$(left "$2")" "$py" bench/bench.py --device cuda --quick --layers "$3" --out "$out/bench-$1.json" || failed+=("bench $1")
}
bench_part layers 200 conv,pool,sweep
bench_part train-top 110 train,top
bench_part predict-notebook 90 predict,notebook

step "done in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'cuda_check: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "cuda_check: every CUDA test passed and every bench part ran; the figures are in the tables above and $out/bench-*.json"
