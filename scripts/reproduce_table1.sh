#!/usr/bin/env bash
# The paper's Table 1 (Gavrikov & Keuper, CIFAR-10, ResNet-20-16): train the four models with the
# paper's recipe (`keras-lc train`'s defaults: 75 epochs, SGD Nesterov 0.9, lr 1e-2 cosine,
# coupled weight decay 1e-2, batch 256, label smoothing 0.1, pad-4 crop + flip), export each
# (`keras-lc export`, the folded .keras only), and print the table: the paper's top-1 beside ours
# in the training form and folded, with each run's wall time and training images/s.
#
# Made for a GPU machine with JAX and no TensorFlow (KERAS_BACKEND=jax, the NumPy input
# pipeline); runs on any backend and machine. keras_lc need not be installed: it runs
# `python -m keras_lc.cli` from this checkout.
#
#   scripts/reproduce_table1.sh                          # the full recipe, all 50,000 images
#   EPOCHS=1 PER_CLASS=50 TEST_PER_CLASS=20 scripts/reproduce_table1.sh   # a smoke run
#
# Environment (defaults in brackets):
#   DATA            CIFAR-10 image-folder archive or folder [../shared/datasets/cifar10-jpeg.tar.gz]
#   RUNS            run directories, one per model, resumed if present [runs/table1]
#   ZOO             where the exports go [RUNS/zoo]
#   EPOCHS          [75]      PER_CLASS / TEST_PER_CLASS: images per class [all]
#   PARALLEL        1: the trainings at once, each with a quarter of the GPU's memory;
#                   0: one after another [1]
#   ONLY            names (of the four below) to train, space-separated [all four]
#   TABLE_ONLY      1: no training or export, only the table of what RUNS and ZOO hold [0]
#   PYTHON          [python]  KERAS_BACKEND [jax]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
RUNS=${RUNS:-runs/table1}
ZOO=${ZOO:-$RUNS/zoo}
EPOCHS=${EPOCHS:-75}
PARALLEL=${PARALLEL:-1}
PYTHON=${PYTHON:-python}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

# name | paper's top-1 | weights tag | keras-lc train arguments
MODELS=(
    "resnet_lc20_16x128_frozen_cifar10|0.9189|cifar10|--model resnet_lc20_16x128 --frozen-spatial"
    "resnet20_16_cifar10|0.916|cifar10|--model resnet20"
    "resnet_lc20_16x128_learnable_cifar10|0.9139|cifar10_learnable|--model resnet_lc20_16x128 --no-frozen-spatial --implementation composed"
    "resnet_lc20_16x1_frozen_cifar10||cifar10|--model resnet_lc20 --expansion 1 --frozen-spatial"
)
if [ -n "${ONLY:-}" ]; then
    chosen=()
    for entry in "${MODELS[@]}"; do
        for name in $ONLY; do
            [ "${entry%%|*}" = "$name" ] && chosen+=("$entry")
        done
    done
    if [ "${#chosen[@]}" -ne "$(wc -w <<< "$ONLY")" ]; then
        echo "ONLY='$ONLY' names a model that is not one of: $(printf '%s ' "${MODELS[@]%%|*}")" >&2
        exit 2
    fi
    MODELS=("${chosen[@]}")
fi
subset=()
[ -n "${PER_CLASS:-}" ] && subset+=(--train-per-class "$PER_CLASS")
[ -n "${TEST_PER_CLASS:-}" ] && subset+=(--test-per-class "$TEST_PER_CLASS")
if [ "$PARALLEL" = 1 ]; then
    # JAX takes 75% of a GPU's memory per process unless told; four processes share one GPU.
    export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.22}
fi
mkdir -p "$RUNS"

train() {  # name, train arguments...: trains (or resumes) RUNS/name, its output in RUNS/name.log
    local name=$1
    shift
    # shellcheck disable=SC2086  # the model's arguments are words
    "$PYTHON" -m keras_lc.cli train $* --dataset cifar10 --data-dir "$DATA" --epochs "$EPOCHS" \
        --validate-every 5 "${subset[@]}" --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
}

if [ "${TABLE_ONLY:-0}" != 1 ]; then
    start=$SECONDS
    pids=()
    for entry in "${MODELS[@]}"; do
        IFS='|' read -r name _ _ arguments <<< "$entry"
        echo "training $name ($arguments), log $RUNS/$name.log"
        if [ "$PARALLEL" = 1 ]; then
            train "$name" "$arguments" &
            pids+=("$!")
        else
            train "$name" "$arguments" || { echo "training $name failed: see $RUNS/$name.log" >&2; exit 1; }
        fi
    done
    failed=0
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            IFS='|' read -r name _ _ _ <<< "${MODELS[$i]}"
            echo "training $name failed: see $RUNS/$name.log" >&2
            failed=1
        fi
    done
    [ "$failed" = 0 ] || exit 1
    echo "trained in $((SECONDS - start)) s"

    for entry in "${MODELS[@]}"; do
        IFS='|' read -r name paper tag _ <<< "$entry"
        "$PYTHON" -m keras_lc.cli export "$RUNS/$name" --name "$name" --zoo-dir "$ZOO" --weights-tag "$tag" \
            ${paper:+--paper-top1 "$paper"} --formats none --overwrite > "$RUNS/$name.export.log" 2>&1 \
            || { echo "export of $name failed: see $RUNS/$name.export.log" >&2; exit 1; }
    done
fi

"$PYTHON" - "$RUNS" "$ZOO" "${MODELS[@]}" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path

runs, zoo = Path(sys.argv[1]), Path(sys.argv[2])
print("| model | paper | ours, training form | ours, folded | epochs | wall time | images/s |")
print("|---|---|---|---|---|---|---|")
for entry in sys.argv[3:]:
    name = entry.split("|")[0]
    card = json.loads((zoo / name / "manifest.json").read_text())
    with open(runs / name / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = sum(float(r["train_seconds"]) for r in rows)
    rate = statistics.median(float(r["images_per_s"]) for r in rows)
    paper = f"{card['paper_top1']:.2%}" if card.get("paper_top1") else "-"
    print(f"| `{name}` | {paper} | {card['top1']:.2%} | {card['top1_folded']:.2%} | {card['epochs']} "
          f"| {seconds:,.0f} s | {rate:,.0f} |")
EOF
