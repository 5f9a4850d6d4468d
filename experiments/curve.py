"""Validation curves against training minutes:
``python -m experiments.curve --workdir=runs/a[,runs/b,...] [--plot=curves.png]``.

For each run, prints at each of ``--minutes`` the epoch reached and the best validation
criterion so far (the negative ELBO for likelihood models: what model selection would have
kept had training stopped there), then the whole run's. Training minutes are summed from the
epochs' logged rates (`vae_jax.training.curve`: training steps with their compiling; validation passes
not counted). Reads each run's ``metrics.jsonl``, or the curve an export recorded
(``--workdir=checkpoints/<name>``), and writes nothing into the runs (they may be training):
``--plot`` draws every run's curve in one figure, elsewhere.
"""

from absl import app, flags

from experiments import cli
from vae_jax.errors import ConfigError
from vae_jax.evaluation import figures
from vae_jax.training import curve, export
from vae_jax.training import workdir as workdir_lib

WORKDIRS = flags.DEFINE_list(
    "workdir", None, "Runs of experiments.train, finished or not, or exports, comma-separated (required)."
)
MINUTES = flags.DEFINE_list("minutes", ["5", "10", "15", "20", "30", "45", "60", "90", "120"], "Marks in minutes.")
PLOT = flags.DEFINE_string("plot", None, "Where to write the curves as one PNG (optional).")


def curve_table(points: list[curve.CurvePoint], marks: list[float]) -> list[str]:
    """Markdown rows: each mark the run reached, then the end of the run."""
    lines = [
        "| training minutes | epoch | best validation value so far (epoch) |",
        "|---|---|---|",
    ]
    for mark, point in curve.at_minutes(points, marks):
        if point is not None:
            lines.append(f"| {mark:g} | {point.epoch} | {point.best:.2f} ({point.best_epoch}) |")
    last = points[-1]
    lines.append(f"| {last.minutes:.1f} (end) | {last.epoch} | {last.best:.2f} ({last.best_epoch}) |")
    return lines


def read_curve(workdir: str) -> list[curve.CurvePoint]:
    points = curve.run_curve(workdir) or export.recorded_curve(workdir)
    if not points:
        raise ConfigError(
            f"--workdir={workdir!r} has no epoch with both a train and a validation record yet: "
            "a curve needs a run with a validation split (train one with experiments.train)."
        )
    return points


def main(argv):
    del argv
    with cli.exit_on_user_errors():
        cli.check_flags(
            workdir=cli.each(cli.existing_directory(), "runs or exports (their directories), comma-separated"),
            minutes=cli.each(cli.number(0), "numbers of minutes >= 0, comma-separated"),
            plot=cli.file_in_existing_directory(),
        )
        marks = [float(m) for m in MINUTES.value]
        curves = {workdir: read_curve(workdir) for workdir in WORKDIRS.value}  # all checked before any output
        for workdir, points in curves.items():
            print(f"{workdir}:")
            print("\n".join(curve_table(points, marks)))
        if PLOT.value:
            # The criterion is the negative ELBO where the runs log one (likelihood models), else their loss.
            elbos = {any("neg_elbo" in r for r in curve.read_records(workdir)) for workdir in curves}
            with workdir_lib.writing(PLOT.value):
                figures.save_curves(
                    PLOT.value,
                    {
                        workdir: ([p.minutes for p in points], [p.value for p in points], [p.best for p in points])
                        for workdir, points in curves.items()
                    },
                    ylabel="validation negative ELBO (nats)" if elbos == {True} else "validation loss",
                    title="best validation value against training minutes",
                )
            print(f"Wrote {PLOT.value}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    app.run(main, flags_parser=cli.parse_flags)
