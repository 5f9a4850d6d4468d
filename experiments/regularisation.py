"""The VAE's regularisation: a sweep of the KL weight beta and of the decoder variance c
(lecture, sections 6-7).

Command:
  python -m experiments.regularisation [--workdir=runs/lecture] [--epochs=5] [--latents=20]
      [--betas=0,1,4,16] [--variances=0.01,0.05,0.2]
It trains 6 MLP VAEs with 20 latents, 5 epochs each on Fashion-MNIST (the beta sweep at
c = 0.05 and the c sweep at beta = 1 share the run beta = 1, c = 0.05); a re-run reuses the
trained models (about 2 minutes on a 2-core CPU). Runtime and result: docs/results.md, the
lecture's experiments.

What it shows: the loss is ||x - f(z)||^2 / (2c) + beta * KL(q(z|x) || N(0, I)) (plus a
constant), so a larger beta or a larger c weights the KL more against the reconstruction:
- reconstruction (squared error per test image) gets worse and the KL smaller;
- fewer latent dimensions stay active (posterior mean varying with the input, Burda et al.);
- the lecture's section 6 picture: without the KL term (beta = 0) the posteriors are
  point-like and their means far apart; the KL term widens the posteriors and pulls the
  means together towards N(0, I).
Numbers per run: squared error, KL (nats), active units, mean posterior std, spread of the
posterior means, and completeness of prior samples (classifier confidence ratio,
empty-region fraction against one posterior sample per training image); the Markdown says
which trends hold (the completeness numbers turn out to be weak signals here). Figure: ``regularisation_sweep.png``
(top: squared error and KL, bottom: active units and empty fraction; left: beta, right: c).
"""

from __future__ import annotations

import jax
import numpy as np
from absl import flags
from jax.tree_util import Partial
from matplotlib.figure import Figure

from configs import vae as vae_config
from experiments import cli, common
from vae_jax.data import datasets
from vae_jax.evaluation import latent_geometry

NAME = "regularisation"
# The columns of the sweep tables (the report's and the lecture page's).
TABLE_HEADER = (
    "beta",
    "c",
    "test squared error",
    "KL (nats)",
    "active units",
    "posterior std (mean)",
    "spread of posterior means",
    "prior samples: confidence ratio",
    "prior samples: empty fraction",
)
BETAS = flags.DEFINE_list("betas", ["0", "1", "4", "16"], "KL weights beta of the sweep at c = --fixed_c.")
VARIANCES = flags.DEFINE_list("variances", ["0.01", "0.05", "0.2"], "Decoder variances c of the sweep at beta = 1.")
FIXED_C = flags.DEFINE_float("fixed_c", 0.05, "The decoder variance c of the beta sweep.")
REG_SAMPLES = flags.DEFINE_integer("reg_samples", 1000, "Prior samples per run for completeness.")


def _plot_sweep(axes, x, rows, xlabel, log_x, latents):
    top, bottom = axes
    error = [r["squared_error"] for r in rows]
    kl = [r["kl"] for r in rows]
    top.plot(x, error, "o-", color="tab:blue")
    top.set_ylabel("test squared error per image", color="tab:blue")
    twin = top.twinx()
    twin.plot(x, kl, "s--", color="tab:red")
    twin.set_ylabel("KL (nats per image)", color="tab:red")
    bottom.plot(x, [r["active_units"] for r in rows], "o-", color="tab:green")
    bottom.set_ylabel("active units", color="tab:green")
    bottom.set_ylim(-0.5, latents + 0.5)
    bottom.set_xlabel(xlabel)
    twin2 = bottom.twinx()
    twin2.plot(x, [r["empty_fraction"] for r in rows], "s--", color="tab:purple")
    twin2.set_ylabel("prior samples in empty regions", color="tab:purple")
    twin2.set_ylim(-0.05, 1.05)
    for ax in (top, bottom):
        if log_x:
            ax.set_xscale("log")
        elif min(x) <= 0 < max(x) / 4:  # beta = 0 next to values spanning decades
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(-0.15, max(x) * 1.2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()


def monotone(rows, key, increasing) -> bool:
    """Whether ``row[key]`` over ``rows`` (in sweep order) never falls (``increasing``) or never rises."""
    values = [r[key] for r in rows]
    return all((b >= a) if increasing else (b <= a) for a, b in zip(values, values[1:]))


def trend_checks(beta_rows, c_rows) -> dict[str, bool]:
    """The trends the lecture predicts, from the rows of the beta sweep and of the c sweep (each in
    increasing order of its variable, as in this experiment's JSON). Maps each trend's text to
    whether it holds."""
    return {
        "beta sweep: squared error grows with beta": monotone(beta_rows, "squared_error", True),
        "beta sweep: KL shrinks with beta": monotone(beta_rows, "kl", False),
        "beta sweep: active units do not grow with beta": monotone(beta_rows, "active_units", False),
        "c sweep: squared error grows with c": monotone(c_rows, "squared_error", True),
        "c sweep: KL shrinks with c": monotone(c_rows, "kl", False),
        "c sweep: active units do not grow with c": monotone(c_rows, "active_units", False),
        "beta sweep: posterior std grows with beta (less point-like)": monotone(beta_rows, "posterior_std", True),
        "beta sweep: posterior means move closer together": monotone(beta_rows, "mean_spread", False),
    }


def main(argv):
    del argv
    cli.check_flags(
        **common.flag_rules("workdir", "dataset", "data_dir", "epochs", "latents"),
        betas=cli.each(cli.number(0), "KL weights >= 0, comma-separated"),
        variances=cli.each(cli.number(0, above=True), "decoder variances > 0, comma-separated"),
        fixed_c=cli.positive(),
        reg_samples=cli.at_least(1),
    )
    dataset = common.flag_or(common.DATASET, "fashion_mnist")
    epochs = common.flag_or(common.EPOCHS, 5)
    latents = common.flag_or(common.LATENTS, 20)
    betas = [float(b) for b in BETAS.value]
    variances = [float(c) for c in VARIANCES.value]
    fixed_c = FIXED_C.value

    splits = datasets.load_dataset(dataset, data_dir=common.DATA_DIR.value or None)
    train_images, test_images = splits["train"].images, splits["test"].images
    classifier = latent_geometry.fit_image_classifier(train_images, splits["train"].labels, max_train=5000)
    key = jax.random.key(0)

    settings = [(beta, fixed_c) for beta in betas] + [(1.0, c) for c in variances]
    runs = {}
    for beta, c in settings:
        if (beta, c) in runs:
            continue
        config = vae_config.get_config()
        common.set_data(config, dataset)
        config.model.latents = latents
        config.num_epochs = epochs
        config.beta, config.c = beta, c
        run = f"{NAME}/{dataset}_z{latents}_e{epochs}_beta{beta:g}_c{c:g}"
        fns, model, params, final = common.train_and_restore(config, common.workdir(run))
        encode, decode = Partial(fns.encode, params), Partial(fns.decode_image, params)
        active = latent_geometry.active_units(encode, test_images)
        mean, std = common.posterior(fns, params, train_images)
        # The reference codes are posterior samples (one per training image): the latents the
        # decoder was trained on, so the region the VAE fills (not only its posterior means).
        train_codes = common.posterior_samples(mean, std, jax.random.fold_in(key, 2))
        comp = latent_geometry.completeness(
            decode,
            classifier,
            train_codes,
            test_images,
            jax.random.fold_in(key, 1),
            num_samples=REG_SAMPLES.value,
            latent_distributions=("standard_normal",),
        )
        runs[(beta, c)] = {
            "beta": beta,
            "c": c,
            "squared_error": final["squared_error"],
            "kl": final["kl"],
            "neg_elbo": final["neg_elbo"],
            "active_units": active["active_units"],
            "posterior_std": float(std.mean()),
            "mean_spread": float(np.sqrt(mean.var(axis=0).mean())),
            "confidence_ratio": comp["standard_normal"]["confidence_ratio"],
            "empty_fraction": comp["standard_normal"]["empty_fraction"],
        }

    beta_rows = [runs[(beta, fixed_c)] for beta in betas]
    c_rows = [runs[(1.0, c)] for c in variances]
    fig = Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2, sharex="col")
    _plot_sweep(axes[:, 0], betas, beta_rows, f"KL weight beta (c = {fixed_c:g})", log_x=False, latents=latents)
    _plot_sweep(axes[:, 1], variances, c_rows, "decoder variance c (beta = 1)", log_x=True, latents=latents)
    axes[0, 0].set_title("sweep of beta")
    axes[0, 1].set_title("sweep of c")
    fig.suptitle(f"VAE regularisation on {dataset} ({latents} latents, {epochs} epochs)")
    fig.tight_layout()
    fig.savefig(common.output_path(f"{NAME}_sweep.png"), dpi=100, bbox_inches="tight")

    header = list(TABLE_HEADER)
    table = lambda rows: common.markdown_table(
        header,
        [
            [
                f"{r['beta']:g}",
                f"{r['c']:g}",
                r["squared_error"],
                r["kl"],
                f"{r['active_units']}/{latents}",
                r["posterior_std"],
                r["mean_spread"],
                r["confidence_ratio"],
                r["empty_fraction"],
            ]
            for r in rows
        ],
    )

    checks = trend_checks(beta_rows, c_rows)
    failed = [text for text, ok in checks.items() if not ok]
    verdict = (
        "Every trend the lecture predicts holds: a larger beta or c trades reconstruction for a smaller KL "
        "and no more (usually fewer) active latent dimensions."
        if not failed
        else "Not every trend holds in these short runs: " + "; ".join(failed) + "."
    )
    beta0, last = runs.get((0.0, fixed_c)), runs[(betas[-1], fixed_c)]
    if beta0 is not None:
        verdict += (
            f" Without the KL term (beta = 0) the mean posterior std is {beta0['posterior_std']:.3g} and the "
            f"spread of the posterior means {beta0['mean_spread']:.3g} per dimension; at beta = {betas[-1]:g} "
            f"they are {last['posterior_std']:.3g} and {last['mean_spread']:.3g} (the lecture: unregularised "
            "posteriors become point-like and far apart; the KL term widens them and pulls them together). "
            f"Prior samples in empty regions: {beta0['empty_fraction']:.0%} at beta = 0, "
            f"{last['empty_fraction']:.0%} at beta = {betas[-1]:g}"
            + (
                " (the KL term makes N(0, I) a better sampler)."
                if last["empty_fraction"] < beta0["empty_fraction"]
                else " (this nearest-neighbour measure does not show the KL term filling the prior here)."
            )
        )
    ratios = [r["confidence_ratio"] for r in beta_rows + c_rows]
    if max(ratios) - min(ratios) < 0.05:
        verdict += (
            " The classifier's confidence on prior samples barely changes with beta or c (ratios "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + "): here it is not a sensitive measure of sample quality."
        )
    twins = [(b, c) for (b, c) in runs for (b2, c2) in runs if b == 1.0 and b2 != 1.0 and b2 * c2 == c]
    if twins:
        verdict += (
            " Only the product beta * c matters to the optimiser: the loss of (beta, c) is beta times that of "
            "(1, beta * c) plus a constant, and Adam's updates do not change when the loss is scaled, so "
            "runs with the same product coincide up to Adam's epsilon (here "
            + ", ".join(f"beta = 1, c = {c:g}" for _, c in twins)
            + ")."
        )
    numbers = {
        "dataset": dataset,
        "latents": latents,
        "epochs": epochs,
        "fixed_c": fixed_c,
        "beta_sweep": beta_rows,
        "c_sweep": c_rows,
        "checks": checks,
    }
    markdown = "\n\n".join(
        [
            f"## Regularisation: the KL weight beta and the decoder variance c ({dataset})",
            f"MLP VAEs (`configs/vae.py`) with {latents} latents, {epochs} epochs each. Loss: ||x - f(z)||^2 / (2c) + "
            "beta * KL (+ const.). Squared error and KL are test means per image; a latent dimension is active when "
            "the variance over test images of its posterior mean exceeds 0.01; posterior std is the mean over training "
            "images and dimensions of q(z|x)'s standard deviation, and the spread of the posterior means the RMS over "
            "dimensions of their std over training images (an aggregate posterior matching N(0, I) needs spread² + posterior variance ≈ 1 per dimension); completeness decodes "
            f"{REG_SAMPLES.value} samples of the prior N(0, I) (classifier confidence relative to real test images; "
            "fraction farther from every code than 99% of the codes are from their nearest neighbour, the codes being "
            "one posterior sample per training image).",
            f"Sweep of beta (c = {fixed_c:g}):",
            table(beta_rows),
            "Sweep of c (beta = 1):",
            table(c_rows),
            verdict,
            f"![the sweeps]({NAME}_sweep.png)",
        ]
    )
    common.write_results(NAME, numbers, markdown)


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
