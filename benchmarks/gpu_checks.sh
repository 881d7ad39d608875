#!/usr/bin/env bash
# The GPU checks of calo in one command, sized for one call of the device tool (an NVIDIA
# machine whose python3 has torch, torch_geometric, lightning, numba and scipy, but not
# uproot, awkward or mplhep: those travel as wheels in .whl/).
#
# Prepare once, here, in the repository root (the wheels are for that machine's Python 3.12):
#
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       uproot==5.7.7 awkward==2.14.0 awkward-cpp cramjam==2.14.0 mplhep==1.3.3 mplhep-data \
#       uhi==1.2.1
#
# Run with the device tool: command "bash benchmarks/gpu_checks.sh", carry [".whl"],
# timeout_s 580. Everything it measures lands in $OUT (it comes back):
#   checks.txt     kNN on CUDA equal to brute force; GravNet/GarNet/DGCNN forward and
#                  gradients on CUDA equal to the CPU's
#   knn_cuda.md    benchmarks/knn.py --device cuda (calo torch backend vs cdist + topk)
#   train.txt      the default calo-train job on the GPU (time, metrics)
#   quality.md     benchmarks/quality.py: paper-size GravNet on 25,000 events, GPU, few minutes
#
# CALO_GPU_CHECKS_DEVICE=cpu runs the same plumbing on the CPU with tiny sizes (a dry run of
# this script; the numbers mean nothing then).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/calo_gpu_checks}
DEV=${CALO_GPU_CHECKS_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CALO_CACHE=/tmp/calo_cache
if [ -d .whl ] && ! "$PY" -c "import uproot, awkward, mplhep" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/calo_site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/calo_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DEV" = cuda ]; then
    SIZES="500 2000 8000 30000"; EVENTS=25000; MINUTES=3; ACC=gpu; BRUTE=30000
else
    SIZES="500"; EVENTS=400; MINUTES=0.2; ACC=cpu; BRUTE=8000
fi
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "1. correctness on $DEV" | tee "$OUT/checks.txt"
timeout 120 "$PY" - "$DEV" <<'EOF' 2>&1 | tee -a "$OUT/checks.txt"
import sys

import torch

from calo.models import ModelConfig, build_model
from calo.nn import knn

dev = sys.argv[1]
print("torch", torch.__version__, "device", torch.cuda.get_device_name() if dev == "cuda" else "cpu")
g = torch.Generator().manual_seed(0)
sizes = [3, 500, 2000, 7000]
x = torch.rand(sum(sizes), 4, generator=g)
batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
idx, d2 = knn(x.to(dev), 40, batch.to(dev))
ok = True
for e, lo in enumerate(torch.tensor([0, *sizes]).cumsum(0)[:-1].tolist()):
    xe = x[lo : lo + sizes[e]].double()
    ref = torch.cdist(xe, xe).square().sort(dim=1).values[:, : min(40, sizes[e])]
    got = d2[lo : lo + sizes[e], : ref.shape[1]].cpu().double()
    err = (got - ref).abs().max().item()
    ok &= err < 1e-4
    print(f"knn event of {sizes[e]} points: max |d2 - brute force| = {err:.2e}")
for name in ("gravnet", "garnet", "edgeconv"):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name=name))
    xs = torch.randn(600, 7, generator=g)
    b = torch.repeat_interleave(torch.arange(4), torch.tensor([100, 150, 170, 180]))
    out = {}
    for d in ("cpu", dev):
        mm = m.to(d)
        mm.zero_grad()
        y = mm(xs.to(d), b.to(d))
        y[:, 0].sum().backward()
        out[d] = (y.detach().cpu(), [p.grad.detach().cpu().clone() for p in mm.parameters()])
    dy = (out["cpu"][0] - out[dev][0]).abs().max().item()
    dg = max((a - c).abs().max().item() for a, c in zip(out["cpu"][1], out[dev][1], strict=True))
    ok &= dy < 1e-4
    print(f"{name}: max |output cpu - {dev}| = {dy:.2e}, max |grad cpu - {dev}| = {dg:.2e}")
print("ALL OK" if ok else "MISMATCH")
EOF

stamp "2. kNN benchmark on $DEV"
timeout 150 "$PY" benchmarks/knn.py --device "$DEV" --sizes $SIZES --events 1 4 --repeats 5 \
    --max-brute-n $BRUTE --out "$OUT" 2>&1 | tail -15

stamp "3. default calo-train on $ACC"
( time timeout 150 "$PY" -m calo train --out /tmp/calo_gpu_run --no-plots \
    trainer.accelerator=$ACC trainer.progress_bar=false ) > "$OUT/train.txt" 2>&1
tail -12 "$OUT/train.txt"

stamp "4. quality: paper-size GravNet, $EVENTS events, $MINUTES min on $ACC"
timeout 300 "$PY" benchmarks/quality.py --events $EVENTS --models gravnet --size paper \
    --minutes $MINUTES --epochs 200 --work /tmp/calo_gpu_quality --out "$OUT" \
    --set trainer.accelerator=$ACC trainer.early_stopping_patience=0 data.batch_size=32 \
    2>&1 | tail -8
stamp "done"
