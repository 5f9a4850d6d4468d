"""Ships a trained run's parameters:
``python -m experiments.export --workdir=runs/<name> --output=checkpoints/<name>``.

Writes into ``--output`` (a new or empty directory; written aside and renamed when complete):

- ``params/<step>/``: the run's parameters alone (no optimiser state) as an orbax checkpoint,
  with the SHA-256 of their arrays (`checkpoints.tree_digest`) in its metadata: the
  validation-selected state for a run with ``model_selection='valid'``, else the last one (the
  state `experiments.evaluate` and the figures use); ``<step>`` is its training step.
- ``config.json``: the run's resolved config, with ``data.data_dir`` emptied for the named
  datasets (a path of the training machine; the evaluation then looks in $VAE_JAX_DATA_DIR and
  the usual places, README "Data"); ``final_metrics.json``: its test metrics.
- ``export.json``: where the parameters come from (the run's directory, relative to the current
  directory or else by its name alone; which state, its step), the model kind and dataset name,
  how many parameters there are, their bytes and SHA-256, the run's importance-sampled
  likelihoods (its ``nll_<split>_k<k>.json`` files), its validation curve
  (`vae_jax.training.curve`; ``experiments.curve`` prints it), the command that trained
  the run (``--train_command``: runs do not record their command line), this command, and the
  command that evaluates the export, each command with its absolute paths made relative or cut
  to their last component; and the versions of jax and orbax.

Nothing in the directory names the machine it was made on (no absolute path, no host name;
orbax's ``commit_success.txt`` markers name their directory relative to the export), except the
data location in the config of a ``folder`` or ``arrays`` run, which its evaluation reads.

It then reads the directory back as `experiments.evaluate` does (`vae_jax.training.run.restore`: JSON and
orbax only, never pickle; the digest must be recorded and match), checks that the parameters
equal the run's, that their shapes are those of a freshly built model of the config, and prints
the directory's size. ``python -m experiments.evaluate --workdir=checkpoints/<name>`` then
evaluates the export without training, with the run's seed: the same numbers as the run gives.
Only a finished run (one with ``final_metrics.json``) is exported. See checkpoints/README.md.
"""

import shlex
import sys

from absl import app, flags

from experiments import cli
from vae_jax.training import export

WORKDIR = flags.DEFINE_string("workdir", None, "A finished run of experiments.train (required).")
OUTPUT = flags.DEFINE_string(
    "output", None, "The directory to write, new or empty, e.g. checkpoints/<name> (required)."
)
TRAIN_COMMAND = flags.DEFINE_string(
    "train_command",
    None,
    "The command that trained the run, recorded in export.json (its absolute paths made portable).",
)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def main(argv):
    del argv
    command = shlex.join(["python", "-m", "experiments.export", *sys.argv[1:]])
    with cli.exit_on_user_errors():
        cli.check_flags(output=cli.new_or_empty_directory())  # the workdir's run: export_run checks it first
        result = export.export_run(WORKDIR.value, OUTPUT.value, train_command=TRAIN_COMMAND.value, command=command)
    parameters = result["parameters"]
    print(
        f"Exported the {result['source']['state']} parameters of {WORKDIR.value} (step {result['source']['step']}): "
        f"{parameters['count']:,} parameters, {_megabytes(parameters['bytes'])}; {OUTPUT.value} holds "
        f"{_megabytes(result['bytes'])} in all (SHA-256 {parameters['sha256'][:16]}...). Evaluate it with "
        f"python -m experiments.evaluate --workdir={shlex.quote(OUTPUT.value)}"
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir", "output"])
    app.run(main, flags_parser=cli.parse_flags)
