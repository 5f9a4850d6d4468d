"""Runs a sweep: ``python -m experiments.sweep --config=configs/sweeps/beta.py --workdir=runs/sweep_beta``.

The config file defines ``get_config()`` (the base config; ``--config.<name>=<value>``
overrides it for every member) and ``get_sweep()`` (the members' overrides, see
`vae_jax.training.sweep_spec`). Members that differ only in seed, beta, c, free bits, learning rate or
KL warm-up train together as one group (``--execution``: in one vmapped program, or in turn);
others run one group after another. Writes
``<workdir>/sweep_results.{json,md}`` and each member's outputs in ``<workdir>/<member>/``.
Running the same command again resumes unfinished groups and skips finished ones. Errors
are reported as in ``experiments.train`` (one ``error: ...`` message, exit status 2).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli
from vae_jax import parallel
from vae_jax.training import loop, sweep

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a sweep config file in configs/sweeps/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory of the sweep (one sub-directory per member; resumes if it holds one).")
flags.mark_flags_as_required(["config", "workdir"])
flags.DEFINE_enum(
    "execution",
    "auto",
    loop.EXECUTIONS,
    "How a group's members train together: vmap (one vmapped "
    "program), in_turn (one after another, each with a run's own program), or auto (vmap on an "
    "accelerator or for small models; see vae_jax.training.loop.choose_execution).",
)
cli.define_process_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with cli.exit_on_user_errors(FLAGS.workdir):
        cli.check_flags(workdir=cli.usable_directory(), **cli.process_flag_rules())  # --execution: absl's enum
        cli.initialize_processes()
        config = cli.config_from_flag()
        members = sweep.load_sweep_file(config_flags.get_config_filename(FLAGS["config"]))
        logging.info("Base config:\n%s", config)
        sweep.run_sweep(config, members, FLAGS.workdir, execution=FLAGS.execution)
    if parallel.is_primary():
        with open(f"{FLAGS.workdir}/{sweep.RESULTS_NAME}.md") as f:
            print(f.read())


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
