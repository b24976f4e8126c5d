#!/usr/bin/env bash
# Re-run the speed benchmarks and rebuild docs/performance.md. Run on a quiet machine
# (nothing else using the cores): about 15 minutes on 2 cores.
#
#   bash benchmarks/run_all.sh [TRAINING_SET.h5]
#
# With a training set (e.g. the default emulator's, see docs/default_emulator.md) the
# training benchmark times epochs on it; otherwise it generates 20000 models first.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=$(mktemp -d)
python benchmarks/bench_emulator.py --out "$parts/emulator.md"
python benchmarks/bench_lnprobfn.py --out "$parts/lnprobfn.md"
python benchmarks/bench_bagpipes_basis.py --skip-unused-smoothing --out "$parts/bagpipes.md"
OPENBLAS_NUM_THREADS=1 python benchmarks/bench_generate.py --compare-batched --n-samples 4000 \
    --out "$parts/generate.md"
if [ $# -ge 1 ]; then
    python benchmarks/bench_train.py --training-set "$1" --epochs 3 --out "$parts/train.md"
else
    python benchmarks/bench_train.py --n-samples 20000 --out "$parts/train.md"
fi
{
    echo "# Performance"
    echo
    echo "Every table below is printed by a committed script; \`bash benchmarks/run_all.sh\`"
    echo "re-runs them all and rewrites this page. Machine details head each table. On the"
    echo "shared 2-core development VM, per-call timings of a few hundred microseconds vary"
    echo "by tens of microseconds between runs (up to +-50 us for lnprobfn): compare rows within one run, not across runs."
    echo
    echo "## Emulator prediction (\`benchmarks/bench_emulator.py\`)"
    echo
    cat "$parts/emulator.md"
    echo
    echo "## Prospector likelihood call (\`benchmarks/bench_lnprobfn.py\`)"
    echo
    cat "$parts/lnprobfn.md"
    echo
    echo "## Likelihood call with BagpipesBasis as the SPS (\`benchmarks/bench_bagpipes_basis.py\`)"
    echo
    cat "$parts/bagpipes.md"
    echo
    echo "## Training-set generation (\`benchmarks/bench_generate.py --compare-batched\`)"
    echo
    cat "$parts/generate.md"
    echo
    echo "## Training (\`benchmarks/bench_train.py\`)"
    echo
    cat "$parts/train.md"
} > docs/performance.md
echo "wrote docs/performance.md"
