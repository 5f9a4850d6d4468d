#!/usr/bin/env bash
# The GPU recipe: on one accelerator, the test suite, then the GPU-scale ladder VAE trained for the
# rest of a time budget, its kept (moving-average) parameters exported for evaluation on a CPU.
#
#   experiments/gpu_recipe.sh OUTPUT_DIR MINUTES DATA_DIR
#
# OUTPUT_DIR: new or empty; gets tests.log, run/ (the workdir: resumable with the same command) and
#   export/ (parameters only; `python -m experiments.evaluate --workdir=OUTPUT_DIR/export
#   --num_samples=1000 --sample_chunk=16` evaluates it anywhere, e.g. back on the CPU).
# MINUTES: the whole budget. The tests' time and EVALUATION_MINUTES (the final test pass, figures,
#   export) are subtracted; the rest is config.max_training_minutes.
# DATA_DIR: holds binarized_mnist_{train,valid,test}.amat[.gz] (or binarized_mnist/ with them).
#
# Environment (defaults for a GPU machine; tests/test_gpu_recipe.py runs it on the CPU, small):
#   RECIPE_PLATFORM  JAX platform the tests must see (cuda); RECIPE_TESTS  what pytest runs (tests);
#   RECIPE_CONFIG    the config (configs/bmnist_ladder_vae_gpu.py); RECIPE_OVERRIDES  extra
#   --config.<key>=<value> words; EVALUATION_MINUTES (10). A machine without ml-collections or
#   grain (the lent H100's image has JAX for CUDA, flax, optax and orbax) gets them as wheels first:
#   PYTHONPATH pointing at them, or `pip install --no-index <wheels>` before this script.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "error: usage: experiments/gpu_recipe.sh OUTPUT_DIR MINUTES DATA_DIR" >&2
  exit 2
fi
output=$1 minutes=$2 data_dir=$3
platform=${RECIPE_PLATFORM:-cuda}
config=${RECIPE_CONFIG:-configs/bmnist_ladder_vae_gpu.py}
evaluation_minutes=${EVALUATION_MINUTES:-10}
if ! [[ $minutes =~ ^[0-9]+$ ]] || [ "$minutes" -le "$evaluation_minutes" ]; then
  echo "error: MINUTES=$minutes: pass a whole number of minutes above EVALUATION_MINUTES=$evaluation_minutes" >&2
  exit 2
fi
if [ -e "$output" ] && [ -n "$(ls -A "$output" 2>/dev/null)" ] && [ ! -d "$output/run" ]; then
  echo "error: OUTPUT_DIR=$output holds other files: pass a new or empty directory (or one of an earlier recipe run)" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
mkdir -p "$output"
start=$(date +%s)

# 1. The test suite, on the accelerator: JAX must see it, or nothing else is worth running.
JAX_PLATFORMS=$platform python -c "import jax; assert jax.default_backend() == '$platform', jax.devices(); print(jax.devices())"
JAX_PLATFORMS=$platform python -m pytest -q ${RECIPE_TESTS:-tests} 2>&1 | tee "$output/tests.log"

# 2. Training for the rest of the budget (a rerun resumes, its budget counted from metrics.jsonl).
used=$(( ($(date +%s) - start + 59) / 60 ))
train_minutes=$(( minutes - used - evaluation_minutes ))
if [ "$train_minutes" -lt 1 ]; then
  echo "error: the tests took $used of the $minutes minutes: no time is left to train; pass more MINUTES" >&2
  exit 1
fi
echo "Training $config for $train_minutes minutes (the tests took $used)."
# shellcheck disable=SC2086  # RECIPE_OVERRIDES is a list of words
JAX_PLATFORMS=$platform python -m experiments.train --config="$config" --workdir="$output/run" \
  --config.data.data_dir="$data_dir" --config.max_training_minutes="$train_minutes" ${RECIPE_OVERRIDES:-}

# 3. The kept state's evaluated parameters (the moving average), alone.
rm -rf "$output/export"
python -m experiments.export --workdir="$output/run" --output="$output/export"
echo "Done: evaluate with python -m experiments.evaluate --workdir=$output/export --num_samples=1000 --sample_chunk=16"
