"""Test log-likelihood of the binarised-MNIST VAE by importance sampling, next to published numbers.

Command:
  python -m experiments.likelihood --data_dir=DIR [--workdir=runs/lecture]
      [--epochs=20] [--ks=1,5,50,1000] [--nll_images=0]
  (DIR holds ``binarized_mnist_{train,valid,test}.amat[.gz]``, directly or in
  ``DIR/binarized_mnist/``; where to get them: README, Configs, Data. Without ``--data_dir``
  the loader uses $VAE_JAX_DATA_DIR, then the usual places)
It trains the VAE of configs/vae_binarized_mnist.py (784-400-20-400-784 MLP, Bernoulli
decoder) for 20 epochs (about 1.5 minutes on a 2-core CPU; the config's default is 50 epochs,
cut here to fit the time), then estimates the log-likelihoods of the 10,000 test images with
k = 1, 5, 50 and 1000 importance samples; a re-run reuses the trained model and only
re-evaluates. Runtime and result: docs/results.md, the lecture's experiments; the time of each
k is in ``<workdir>/likelihood.json``.

What it shows: the ELBO is a lower bound on log p(x); the importance-sampled estimate
L_k (`likelihood.model_log_likelihood`, Burda et al. 2016) tightens as k grows (L_1 is the ELBO),
so the test NLL -L_k falls with k towards -log p(x). The numbers are put next to published
ones on the same static binarisation, with the differences in training stated, and the
number of active latent units (Burda et al.'s measure of how many latents the VAE uses).
"""

from __future__ import annotations

import time

import jax
from absl import flags
from jax.tree_util import Partial

from configs import vae_binarized_mnist
from experiments import cli, common
from vae_jax.data import datasets
from vae_jax.evaluation import latent_geometry, likelihood

NAME = "likelihood"
KS = flags.DEFINE_list("ks", ["1", "5", "50", "1000"], "Numbers of importance samples k.")
NLL_IMAGES = flags.DEFINE_integer("nll_images", 0, "Test images to evaluate (0: the whole test split).")

# Published test NLLs on the static binarisation of MNIST (Larochelle & Murray), in nats.
PUBLISHED = [
    ("Burda et al. 2016 (IWAE), appendix: VAE, 1 stochastic layer, trained with k = 1", 88.71),
    ("same, VAE trained with k = 5 samples per example", 87.63),
    ("same, VAE trained with k = 50 samples per example", 87.10),
    ("Rezende & Mohamed 2015: VAE (DLGM, diagonal Gaussian posterior)", 89.8),
]


def falls_with_k(nlls) -> bool:
    """Whether the NLL estimates, in increasing order of k, never rise (by more than 1e-6 nats):
    what the lecture predicts, as L_k is non-decreasing in k in expectation."""
    return all(b <= a + 1e-6 for a, b in zip(nlls, nlls[1:]))


def main(argv):
    del argv
    cli.check_flags(
        **common.flag_rules("workdir", "dataset", "data_dir", "epochs", "latents"),
        ks=cli.each(cli.number(1, integer=True), "numbers of importance samples, integers >= 1, comma-separated"),
        nll_images=cli.at_least(0),
    )
    dataset = common.flag_or(common.DATASET, "binarized_mnist")
    epochs = common.flag_or(common.EPOCHS, 20)
    latents = common.flag_or(common.LATENTS, 20)
    ks = sorted({int(k) for k in KS.value})

    config = vae_binarized_mnist.get_config()
    common.set_data(config, dataset)
    config.model.latents = latents
    config.num_epochs = epochs
    config.checkpoint_every_epochs = max(1, epochs // 4)
    start = time.perf_counter()
    fns, model, params, final = common.train_and_restore(
        config, common.workdir(f"{NAME}/{dataset}_z{latents}_e{epochs}")
    )
    train_seconds = time.perf_counter() - start

    test_images = datasets.load_dataset(dataset, data_dir=common.DATA_DIR.value or None)["test"].images
    if NLL_IMAGES.value:
        test_images = test_images[: NLL_IMAGES.value]
    active = latent_geometry.active_units(Partial(fns.encode, params), test_images)

    results = []
    for k in ks:
        start = time.perf_counter()
        estimate = likelihood.model_log_likelihood(fns, params, test_images, jax.random.key(1), num_samples=k)
        seconds = time.perf_counter() - start
        results.append(
            {"k": k, "nll": estimate["nll"], "standard_error": estimate["standard_error"], "seconds": seconds}
        )
    nlls = [r["nll"] for r in results]

    numbers = {
        "dataset": dataset,
        "epochs": epochs,
        "latents": latents,
        "test_images": len(test_images),
        "train_or_restore_seconds": train_seconds,
        "test_neg_elbo": final["neg_elbo"],
        "test_kl": final["kl"],
        "test_reconstruction": final["reconstruction"],
        "active_units": active["active_units"],
        "nll": results,
        "published": [{"source": s, "nll": v} for s, v in PUBLISHED],
    }
    decreasing = falls_with_k(nlls)
    best = results[-1]
    gap = best["nll"] - PUBLISHED[0][1]
    markdown = "\n\n".join(
        [
            "## Test log-likelihood: VAE on the statically binarised MNIST",
            f"`configs/vae_binarized_mnist.py` (784-400-{latents}-400-784 MLP, ReLU, Bernoulli decoder, Adam 1e-3, "
            f"batch 128), trained for {epochs} epochs on the 50,000 training images (the config's default is 50 epochs; "
            f"{epochs} fit the time budget of this experiment). Test negative ELBO {final['neg_elbo']:.2f} nats "
            f"(reconstruction {final['reconstruction']:.2f} + KL {final['kl']:.2f}, one posterior sample per image); "
            f"{active['active_units']} of {latents} latent units active. NLL = -L_k, the importance-sampled estimate "
            f"with k samples from q(z|x) (`likelihood.model_log_likelihood`), on {len(test_images):,} test images; the "
            "standard error is over images.",
            common.markdown_table(
                ["k", "test NLL (nats)", "standard error", "time (s)"],
                [[r["k"], f"{r['nll']:.2f}", f"{r['standard_error']:.2f}", f"{r['seconds']:.1f}"] for r in results],
            ),
            "Published test NLLs on the same data (evaluated with k = 5000 importance samples; their k is the number "
            "of samples in the *training* objective, not in the evaluation):",
            common.markdown_table(["model", "test NLL (nats)"], [[s, f"{v:.2f}"] for s, v in PUBLISHED]),
            (
                f"The estimate falls with k as it should (L_k is non-decreasing in k in expectation): {nlls[0]:.2f} nats "
                f"at k = {ks[0]} (the ELBO) to {best['nll']:.2f} at k = {best['k']}."
                if decreasing
                else "The estimates do not fall monotonically with k here (the difference is within their noise): "
                + ", ".join(f"{r['nll']:.2f} at k = {r['k']}" for r in results)
                + "."
            )
            + f" At k = {best['k']} this model is {gap:+.2f} nats from the published 1-layer VAE ({PUBLISHED[0][1]}): "
            "the published models were trained for thousands of epochs (Burda et al.: 3,280 passes, two tanh layers of "
            f"200 units, 50 latents) against {epochs} epochs here, so a gap is expected.",
        ]
    )
    common.write_results(NAME, numbers, markdown)


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
