"""The lecture as one interactive page: ``<workdir>/index.html`` (default ``runs/lecture/index.html``).

Command:
  python -m experiments.lecture_page [--workdir=runs/lecture]
  (``python -m experiments.report`` runs it too, after writing REPORT.md; ``--nohtml`` skips it)
Runtime: about 15 s on a 2-core CPU (restores the trained models, encodes the test images).

One self-contained HTML file (styles, script, data and the decoders' weights inside; no server,
no network: it opens from disk), built from the experiments' JSON and trained models, so its
numbers are the ones the experiments measured. Sections follow the lecture (as REPORT.md):

- PCA's worked example (``pca_table.json``): the points A..E can be dragged; the covariance
  ``X^T X / n``, its top eigenvector (closed form for 2x2, the sign rule of `vae_jax.models.pca`), the
  codes and the projections are recomputed in the page.
- PCA vs a linear autoencoder (``pca_vs_linear_ae.json`` and its two models): the two bases as
  images side by side, their |cosines|, the principal angles and the errors.
- AE vs VAE latent planes (``latent_space.json`` and its two 2-latent models): the test codes
  coloured by label; the pointer over a plane decodes that point with the trained decoder
  (an MLP, its float32 weights exported from the checkpoint by `decoder_spec`, evaluated by
  the page's script), and a drag draws a straight path whose decodings are shown (continuity),
  beside the measured continuity and completeness numbers.
- The KL weight beta and the decoder variance c (``regularisation.json`` and its models): a
  control over the sweep's runs shows each one's posterior means (the two most active latent
  dimensions, with one-std ellipses), decoded prior samples and numbers.
- The test log-likelihood (``likelihood.json``): NLL against the number of importance samples k.

A section whose experiment has not been run is shown as "not run yet: <command>"; one whose
models are missing shows its numbers without the interactive part. The page is tested in a
headless Chromium by ``tests/test_lecture_page.py``.
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import json
import os
import re

import numpy as np

from experiments import cli, common
from experiments.sections import SECTIONS, command

NAME = "index.html"
ASSETS = os.path.dirname(os.path.abspath(__file__))
SAMPLES = 64  # decoded prior samples per regularisation run (an 8 x 8 grid)
SCATTER_POINTS = 2000  # test images whose posteriors the regularisation section draws
ELLIPSES = 120  # of which this many with their one-std ellipses
CLASS_NAMES = {
    "fashion_mnist": ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"],
}
# The page's script evaluates these activations (vae_jax.models.layers.ACTIVATIONS; gelu: the tanh form, flax's default).
ACTIVATIONS = ("relu", "gelu", "tanh", "elu", "sigmoid", "none")


class PageError(ValueError):
    """A trained model the page cannot show (not an MLP decoder, or no checkpoint)."""


# ---------------------------------------------------------------------------------------------
# Data: arrays as base64 strings, decoders as layers


def b64(array, dtype=np.float32) -> str:
    """``array`` as little-endian ``dtype`` bytes in base64 (the page reads them with atob)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def decoder_spec(config, fns, params) -> dict:
    """The decoder of a restored run (`vae_jax.training.run.restore`) as data for the page's forward pass.

    ``{"layers": [{"shape": [in, out], "kernel": base64 float32 [in * out] (row-major),
    "bias": base64 float32 [out], "activations": [...]}, ...], "shape": [H, W, C]}``: each layer
    is ``h = act(h @ kernel + bias)``, the activations applied in order; the last layer's are
    the decoder's output activation and, for a Bernoulli VAE, the sigmoid of
    `vae_jax.models.likelihoods.to_image`, so the page computes ``fns.decode_image`` (an image in
    [0, 1]). Only MLP decoders (`vae_jax.models.layers.Decoder`) are exported: `PageError` otherwise.
    """
    model = fns.module
    if model is None or config.model.architecture != "mlp" or fns.autoregressive or len(fns.latent_sizes) > 1:
        raise PageError(
            f"the page decodes the MLP decoders of one-layer models only (a {fns.label}, "
            f"architecture={config.model.architecture!r})"
        )
    tree = params["params"]["decoder"]
    activation, output = model.activation, [model.output_activation]
    if fns.likelihood == "bernoulli":
        output.append("sigmoid")  # likelihoods.to_image: the Bernoulli mean
    names = [f"Dense_{i}" for i in range(len(config.model.decoder_hidden))]
    dense = [(tree["body"][name], [activation]) for name in names] + [(tree["out"], output)]
    layers = []
    for layer, activations in dense:
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise PageError(f"the page has no activation {unknown[0]!r}")
        kernel = np.asarray(layer["kernel"], np.float32)
        layers.append(
            {
                "shape": list(kernel.shape),
                "kernel": b64(kernel),
                "bias": b64(layer["bias"]),
                "activations": [a for a in activations if a != "none"],
            }
        )
    return {"layers": layers, "shape": [int(s) for s in model.output_shape]}


def _restore(workdir: str):
    """`vae_jax.training.run.restore` of ``workdir``, or `PageError` saying what is missing."""
    from vae_jax.errors import USER_ERRORS
    from vae_jax.training import run

    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise PageError(f"no trained model in {workdir}")
    try:
        return run.restore(workdir)
    except USER_ERRORS as error:
        raise PageError(str(error)) from None


@functools.lru_cache(maxsize=4)
def _test_split(data_json: str, seed: int):
    from vae_jax import config as config_lib
    from vae_jax.training import run

    config = config_lib.resolve({"seed": seed, "data": json.loads(data_json)})  # every other key its default
    split = run.load_splits(config)["test"]
    return np.asarray(split.images), None if split.labels is None else np.asarray(split.labels)


def held_out_split(config):
    """``(images, labels)`` of the test split a run was evaluated on (cached; labels 0 where the
    dataset has none), or `PageError` when its data cannot be loaded here."""
    from vae_jax.errors import USER_ERRORS

    try:
        images, labels = _test_split(json.dumps(config.data.to_dict(), sort_keys=True), config.seed)
    except USER_ERRORS as error:
        raise PageError(f"the test images of {config.data.name} cannot be loaded: {error}") from None
    return images, (np.zeros(len(images), np.uint8) if labels is None else labels)


def _images_u8(images) -> np.ndarray:
    return np.round(np.clip(np.asarray(images, np.float64), 0, 1) * 255).astype(np.uint8)


def class_names(dataset: str) -> list[str]:
    return CLASS_NAMES.get(dataset, [str(i) for i in range(10)])


# ---------------------------------------------------------------------------------------------
# One function per section: (data for the script, HTML)


def _read_json(workdir: str, name: str):
    path = os.path.join(workdir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt(value, digits: int = 4) -> str:
    """A number as the report writes it (``digits`` significant digits), a minus sign for '-'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    if isinstance(value, int):
        return f"{value:,}".replace("-", "\u2212")
    return f"{value:.{digits}g}".replace("-", "\u2212")


def table(header, rows, *, cls: str = "numbers", row_attrs=None) -> str:
    """An HTML table; cells are already HTML (use `fmt` or `html.escape`)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        attrs = row_attrs[i] if row_attrs else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def not_run(name: str) -> str:
    return f'<p class="not-run">not run yet: {code(command(name))}</p>'


def missing_models(name: str, error: Exception) -> str:
    return (
        f'<p class="not-run">The interactive part needs the trained models ({html.escape(str(error))}): '
        f"{code(command(name))} writes them.</p>"
    )


def checks_list(checks: dict[str, bool]) -> str:
    items = "".join(
        f'<li class="{"ok" if ok else "fail"}"><span class="mark">{"holds" if ok else "does not hold"}</span> '
        f"{html.escape(text)}</li>"
        for text, ok in checks.items()
    )
    return f'<ul class="checks">{items}</ul>'


def pca_section(workdir: str):
    numbers = _read_json(workdir, "pca_table")
    if numbers is None:
        return None, not_run("pca_table")
    from experiments import pca_table

    data = {"points": pca_table.POINTS, "measured": numbers}
    component = numbers["component"]
    body = f"""
<p>The lecture's five centred points and one principal component: the top eigenvector of the
covariance <i>X</i><sup>T</sup><i>X</i>&thinsp;/&thinsp;<i>n</i>. The encoder is that unit vector (a 1&times;2 matrix),
the decoder its transpose: a point's code is its coordinate along the axis, its decoding the
projection onto the axis. <b>Drag a point</b>: the covariance, the axis, the codes and the
projections are recomputed in the page (the 2&times;2 eigenproblem in closed form, with
<code>vae_jax.pca</code>'s sign rule: the largest coordinate of the component is positive).</p>
<div class="row">
  <figure class="pca-figure">
    <svg id="pca-svg" viewBox="0 0 440 440" width="440" height="440" role="img"
      aria-label="the five points, the principal axis and the projections"></svg>
    <figcaption>Black: the points; blue: the principal axis; red crosses: the decodings
    (projections); dotted: the reconstruction errors.</figcaption>
  </figure>
  <div class="pca-side">
    <table class="numbers" id="pca-table"><thead><tr><th>point</th><th>initial</th><th>encoded</th>
    <th>decoded</th></tr></thead><tbody></tbody></table>
    <p id="pca-component"></p>
    <p id="pca-status" class="status"></p>
    <p class="controls"><button type="button" id="pca-reset">Reset to the lecture's points</button>
    <label><input type="checkbox" id="pca-centre"> subtract the mean first</label></p>
    <p class="note">Measured by {code("python -m experiments.pca_table")} (<code>jnp.linalg.eigh</code>):
    component ({fmt(component[0])}, {fmt(component[1])}), explaining
    {numbers["explained_variance_ratio"]:.1%} of the variance; its table equals the lecture's at
    2 decimals. The lecture's points are centred, so the experiment does not subtract their
    mean; with the box ticked the page does (moved points need not be centred).</p>
  </div>
</div>"""
    return data, body


def linear_section(workdir: str):
    from experiments import pca_vs_linear_ae as exp
    from vae_jax.data import datasets as data_lib

    numbers = _read_json(workdir, exp.NAME)
    if numbers is None:
        return None, not_run(exp.NAME)
    dataset, latents = numbers["dataset"], numbers["latents"]
    pca_run = common_run(workdir, f"{exp.NAME}/{dataset}_pca_z{latents}")
    ae_run = common_run(
        workdir,
        f"{exp.NAME}/{dataset}_linear_ae_z{latents}_e{numbers['epochs']}_lr{numbers['learning_rate']:g}",
    )
    data, interactive = None, ""
    try:
        _, _, _, fitted = _restore(pca_run)
        _, _, _, params = _restore(ae_run)
        components = np.asarray(fitted.components, np.float64)
        basis = np.asarray(params["params"]["decoder"]["out"]["kernel"], np.float64)
        data = {
            "shape": list(data_lib.image_shape(dataset)),
            "latents": latents,
            "components": b64(components),
            "basis": b64(basis),
            "cosines": exp.abs_cosines(basis, components).tolist(),
            "angles": numbers["principal_angles_degrees"],
            "pca_variance": numbers["pca_code_variance"],
            "ae_variance": numbers["ae_code_variance"],
        }
        interactive = """
<div class="bases">
  <div class="bases-row"><div class="bases-label">PCA components<br><small>code variance</small></div>
    <div class="tiles" id="bases-pca"></div></div>
  <div class="bases-row"><div class="bases-label">linear AE decoder rows<br>
    <small>code variance, best |cos|</small></div>
    <div class="tiles" id="bases-ae"></div></div>
</div>
<p class="note">Red &gt; 0 &gt; blue, each image scaled to its own range. <b>Point at an image</b>: its row
(AE) or column (PCA) of the |cosine| matrix below is outlined, and the vector of the other basis closest
to it framed in orange.</p>
<div class="row">
  <figure><svg id="cosines-svg" role="img" aria-label="|cosine| between the bases"></svg>
  <figcaption>|cosine| between every AE basis vector (rows) and every principal component
  (columns). The PCA basis would be the identity (up to order).</figcaption></figure>
  <figure><svg id="angles-svg" role="img" aria-label="principal angles"></svg>
  <figcaption>Principal angles between the two subspaces (degrees): all zero for the same
  subspace.</figcaption></figure>
</div>"""
    except PageError as error:
        interactive = missing_models(exp.NAME, error)
    ae_stats, pca_stats = numbers["ae_basis"], numbers["pca_basis"]
    checks = exp.claims(numbers)
    verdicts = checks_list(
        {
            "same subspace and error: every principal angle below 5 degrees, test errors within 1%": checks[
                "same_subspace_and_error"
            ],
            "different basis: mean best |cos| below 0.9, Gram matrix (rows normalised) more than 0.1 from I": checks[
                "different_basis"
            ],
        }
    )
    rows = [
        ["test squared error per image", fmt(numbers["pca_test_squared_error"]), fmt(numbers["ae_test_squared_error"])],
        ["&Vert;BB<sup>T</sup> &minus; I&Vert;<sub>F</sub> / &Vert;I&Vert;<sub>F</sub> (rows as they are)"]
        + [fmt(s["gram_deviation"]) for s in (pca_stats, ae_stats)],
        ["same, rows normalised to length 1"] + [fmt(s["normalised_gram_deviation"]) for s in (pca_stats, ae_stats)],
        ["condition number of BB<sup>T</sup>"] + [fmt(s["gram_condition"]) for s in (pca_stats, ae_stats)],
        ["basis vector lengths (min &ndash; max)"]
        + [f"{fmt(s['row_norm_min'], 3)} &ndash; {fmt(s['row_norm_max'], 3)}" for s in (pca_stats, ae_stats)],
        ["code variances in decreasing order", "yes", "yes" if numbers["ae_code_variance_decreasing"] else "no"],
    ]
    subspace = [
        ["largest principal angle (degrees)", fmt(numbers["max_angle_degrees"])],
        ["mean principal angle (degrees)", fmt(numbers["mean_angle_degrees"])],
        ["relative difference of the test errors (AE &minus; PCA) / PCA", fmt(numbers["relative_error_difference"])],
        ["mean over AE basis vectors of the best |cos| with a component", fmt(numbers["mean_best_abs_cosine"])],
        ["smallest such best |cos|", fmt(numbers["min_best_abs_cosine"])],
    ]
    body = f"""
<p>PCA ({code("jnp.linalg.eigh")} of the covariance) and the linear autoencoder of
{code("configs/linear_ae.py")} (one affine layer each way, squared error; {plural(numbers["epochs"], "epoch")}, Adam,
cosine learning rate from {fmt(numbers["learning_rate"])}), both with {latents} latents, trained on the
{html.escape(dataset)} training split. The lecture: the linear autoencoder finds the same subspace as PCA,
with the same error, but a different basis: neither orthonormal nor ordered by variance.</p>
{interactive}
<div class="row">
{table(["", "PCA", "linear AE"], rows)}
{table(["subspace comparison", "value"], subspace)}
</div>
{verdicts}
<p class="note">PCA explains {numbers["pca_explained_variance_ratio"]:.1%} of the training variance. B is the
matrix whose rows are the basis vectors: the PCA components, or the rows of the AE decoder's kernel
(x&#770; = zB + b).</p>"""
    return data, body


def common_run(workdir: str, run: str) -> str:
    """``<workdir>/workdirs/<run>``: where an experiment trained a model (as `common.workdir`)."""
    return os.path.join(workdir, "workdirs", run)


def latent_section(workdir: str):
    from jax.tree_util import Partial

    from experiments import latent_space as exp
    from vae_jax.evaluation import latent_geometry

    numbers = _read_json(workdir, exp.NAME)
    if numbers is None:
        return None, not_run(exp.NAME)
    dataset, epochs = numbers["dataset"], numbers["epochs"]
    data = {"models": {}, "class_names": class_names(dataset)}
    interactive = ""
    try:
        for name in ("AE", "VAE"):
            config, fns, _, params = _restore(common_run(workdir, f"{exp.NAME}/{dataset}_{name.lower()}_z2_e{epochs}"))
            if config.model.latents != 2:
                raise PageError(f"the {name} has {config.model.latents} latents, the page draws 2")
            images, labels = held_out_split(config)
            codes = latent_geometry.encode_images(Partial(fns.encode, params), images).astype(np.float32)
            (x0, y0), (x1, y1) = np.percentile(codes, [0.5, 99.5], axis=0)
            data["labels"] = b64(labels, np.uint8)
            data["models"][name] = {
                "decoder": decoder_spec(config, fns, params),
                "codes": b64(codes),
                "box": [float(x0), float(x1), float(y0), float(y1)],
                "threshold": latent_geometry.empty_region_threshold(codes),
                "code_std": numbers[name]["continuity"]["code_std"],
                "measured_max_jump": numbers[name]["continuity"]["max_jump"],
                "prior": name == "VAE",
            }
        interactive = latent_planes_html(data["class_names"])
    except PageError as error:
        data, interactive = None, missing_models(exp.NAME, error)
    ae, vae = numbers["AE"], numbers["VAE"]

    def comp(model, dist, key):
        return fmt(numbers[model]["completeness"][dist][key])

    rows = [
        ["test squared error per image", fmt(ae["test_squared_error"]), fmt(vae["test_squared_error"])],
        ["code std per dimension (test)"] + [", ".join(fmt(s, 3) for s in m["code_std"]) for m in (ae, vae)],
        ["continuity: output change per code-std step (mean)"]
        + [fmt(m["continuity"]["mean_ratio_normalised"]) for m in (ae, vae)],
        ["continuity: same, max over all steps"] + [fmt(m["continuity"]["max_ratio_normalised"]) for m in (ae, vae)],
        ["continuity: largest single step / whole path change (mean over paths; uniform = 0.05)"]
        + [fmt(m["continuity"]["max_jump"]) for m in (ae, vae)],
        ["completeness, z ~ N(0, I): classifier confidence ratio"]
        + [comp(m, "standard_normal", "confidence_ratio") for m in ("AE", "VAE")],
        ["completeness, z ~ N(0, I): empty-region fraction"]
        + [comp(m, "standard_normal", "empty_fraction") for m in ("AE", "VAE")],
        ["completeness, z ~ fitted Gaussian: classifier confidence ratio"]
        + [comp(m, "fitted_gaussian", "confidence_ratio") for m in ("AE", "VAE")],
        ["completeness, z ~ fitted Gaussian: empty-region fraction"]
        + [comp(m, "fitted_gaussian", "empty_fraction") for m in ("AE", "VAE")],
    ]
    if "prior_empty_fraction_vs_posterior_samples" in vae:
        rows.insert(
            7,
            [
                "completeness, z ~ N(0, I): empty-region fraction against posterior samples instead of means",
                "n/a (point codes)",
                fmt(vae["prior_empty_fraction_vs_posterior_samples"]),
            ],
        )
    checks = numbers.get("claim_checks") or exp.claim_checks(numbers)
    body = f"""
<p>An MLP autoencoder ({code("configs/ae.py")}) and an MLP VAE ({code("configs/vae.py")}, c = 0.05,
&beta; = 1), both with 2 latents, {plural(epochs, "epoch")} on {html.escape(dataset)}. The lecture: a plain
autoencoder's latent space need not be continuous or filled, so decoding a point from a gap gives
garbage; the VAE's KL term pulls the codes towards N(0, I) to fill the plane. The numbers below the
planes say how far each claim holds here.</p>
{interactive}
<h3>Measured continuity and completeness</h3>
<p class="note">Continuity: straight paths between random test codes, 20 steps each
({code("latent_geometry.continuity")}; output change in grey levels, L2 over pixels, per code-std of latent
movement). Completeness: latent samples judged by a logistic-regression classifier trained on real
images (test accuracy {numbers["classifier_test_accuracy"]:.1%}); the confidence ratio is the samples'
mean confidence over the real test images'; a sample is in an empty region when it is farther from
every training code than 99% of the codes are from their nearest neighbour.</p>
{table(["", "AE", "VAE"], rows)}
{checks_list(checks)}"""
    return data, body


def latent_planes_html(names: list[str]) -> str:
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:var(--c{i})"></span>{html.escape(n)}</span>'
        for i, n in enumerate(names)
    )
    panels = []
    for name, title in (("AE", "plain autoencoder"), ("VAE", "variational autoencoder (posterior means)")):
        panels.append(f"""
<div class="latent-panel" id="latent-{name}" data-model="{name}">
  <h3>{name}: {title}</h3>
  <div class="latent-main">
    <canvas class="plane" width="360" height="360" aria-label="{name} latent plane"></canvas>
    <div class="latent-side">
      <canvas class="decoded" width="140" height="140" aria-label="{name} decoding of the pointer"></canvas>
      <p class="readout"></p>
    </div>
  </div>
  <canvas class="strip" width="520" height="60" aria-label="{name} decodings along the path"></canvas>
  <p class="path-readout"></p>
</div>""")
    return f"""
<p><b>Move the pointer over a plane</b>: the page decodes that latent point with the model's own
decoder (its weights, exported from the checkpoint, evaluated by this page's script) and shows the
image; the readout says how far the point is from the nearest test code and whether that is an
empty region (farther than 99% of the test codes are from their nearest neighbour). <b>Press and
drag</b> to draw a straight path: the strip shows 10 decodings along it, and the readout the
path's largest single step as a fraction of the whole change (20 steps; an even change gives
0.05). Dots: the test codes, coloured by label; dashed box: their 0.5&ndash;99.5% range; circles
(VAE): one and two standard deviations of the prior N(0, I).</p>
<div class="legend">{legend}</div>
<div class="latent-panels">{"".join(panels)}</div>"""


def regularisation_section(workdir: str):
    import jax

    from experiments import regularisation as exp

    numbers = _read_json(workdir, exp.NAME)
    if numbers is None:
        return None, not_run(exp.NAME)
    dataset, latents, epochs = numbers["dataset"], numbers["latents"], numbers["epochs"]
    rows = numbers["beta_sweep"] + numbers["c_sweep"]
    settings = []
    for row in rows:
        if (row["beta"], row["c"]) not in settings:
            settings.append((row["beta"], row["c"]))
    data, interactive = {"latents": latents, "runs": [], "class_names": class_names(dataset)}, ""

    def buttons(sweep, variable):
        symbol = "&beta;" if variable == "beta" else "c"
        runs = [(settings.index((r["beta"], r["c"])), fmt(r[variable])) for r in sweep]
        return " ".join(f'<button type="button" data-run="{i}">{symbol} = {value}</button>' for i, value in runs)

    try:
        for beta, c in settings:
            run = f"{exp.NAME}/{dataset}_z{latents}_e{epochs}_beta{beta:g}_c{c:g}"
            config, fns, _, params = _restore(common_run(workdir, run))
            images, labels = held_out_split(config)
            images, labels = images[:SCATTER_POINTS], labels[:SCATTER_POINTS]
            mean, std = common.posterior(fns, params, images)
            variance = mean.astype(np.float64).var(axis=0)
            dims = [int(i) for i in np.argsort(-variance, kind="stable")[:2]]
            z = jax.random.normal(jax.random.key(0), (SAMPLES, config.model.latents))
            samples = np.asarray(fns.decode_image(params, z))
            data["labels"] = b64(labels, np.uint8)
            data["shape"] = list(samples.shape[1:])
            data["runs"].append(
                {
                    "beta": beta,
                    "c": c,
                    "numbers": next(r for r in rows if (r["beta"], r["c"]) == (beta, c)),
                    "dims": dims,
                    "dim_variance": [float(variance[i]) for i in dims],
                    "means": b64(mean[:, dims]),
                    "stds": b64(std[:ELLIPSES, dims]),
                    "samples": b64(_images_u8(samples), np.uint8),
                }
            )
        interactive = f"""
<p><b>Choose a run</b> (or a row of the tables): its posteriors and its samples are shown. Left:
the posterior means of {SCATTER_POINTS:,} test images in the run's two most active latent dimensions
(largest variance of the mean over the images), the first {ELLIPSES} with their one-std ellipses, and
the prior's unit circle. Right: {SAMPLES} images decoded from z ~ N(0, I) (the same z for every run).</p>
<div class="reg-control" role="group" aria-label="runs of the sweep">
  <span class="group-label">&beta; sweep (c = {fmt(numbers["fixed_c"])}):</span>
  {buttons(numbers["beta_sweep"], "beta")}
  <span class="group-label">c sweep (&beta; = 1):</span> {buttons(numbers["c_sweep"], "c")}
  <label class="same-axes"><input type="checkbox" id="reg-same-axes" checked> same axes for every run</label>
</div>
<div class="row reg-view">
  <figure><canvas id="reg-scatter" width="380" height="380" aria-label="posterior means"></canvas>
  <figcaption id="reg-scatter-caption"></figcaption></figure>
  <figure><canvas id="reg-samples" width="296" height="296" aria-label="decoded prior samples"></canvas>
  <figcaption>decoded prior samples</figcaption></figure>
  <dl id="reg-numbers" class="numbers-list"></dl>
</div>"""
    except PageError as error:
        data, interactive = None, missing_models(exp.NAME, error)

    header = ["&beta;", *exp.TABLE_HEADER[1:]]

    def sweep_table(sweep):
        cells = [
            [
                fmt(r["beta"]),
                fmt(r["c"]),
                fmt(r["squared_error"]),
                fmt(r["kl"]),
                f"{r['active_units']}/{latents}",
                fmt(r["posterior_std"]),
                fmt(r["mean_spread"]),
                fmt(r["confidence_ratio"]),
                fmt(r["empty_fraction"]),
            ]
            for r in sweep
        ]
        attrs = [f' data-run="{settings.index((r["beta"], r["c"]))}"' for r in sweep]
        return table(header, cells, cls="numbers sweep", row_attrs=attrs)

    checks = numbers.get("checks") or exp.trend_checks(numbers["beta_sweep"], numbers["c_sweep"])
    body = f"""
<p>MLP VAEs ({code("configs/vae.py")}) with {latents} latents, {plural(epochs, "epoch")} each on {html.escape(dataset)}.
The loss is &Vert;x &minus; f(z)&Vert;<sup>2</sup>&thinsp;/&thinsp;(2c) + &beta;&middot;KL(q(z|x) &Vert; N(0, I))
(+ const.): a larger &beta; or a larger c weights the KL more against the reconstruction. The lecture's
picture: without the KL term the posteriors are point-like and their means far apart; the KL term widens
them and pulls the means together towards N(0, I).</p>
{interactive}
<p class="table-title">Sweep of &beta; (c = {fmt(numbers["fixed_c"])}):</p>
{sweep_table(numbers["beta_sweep"])}
<p class="table-title">Sweep of c (&beta; = 1):</p>
{sweep_table(numbers["c_sweep"])}
{checks_list(checks)}
<p class="note">Squared error and KL are test means per image; a latent dimension is active when the variance
over test images of its posterior mean exceeds 0.01; the posterior std is the mean over training images and
dimensions of q(z|x)'s standard deviation, the spread of the means the RMS over dimensions of their std over
training images; the prior samples' confidence ratio and empty fraction are as in the section above (the
codes being one posterior sample per training image).</p>"""
    return data, body


def short_labels(published) -> list[str]:
    """Chart labels of the published results: the authors (the previous row's for 'same, ...') and
    the training k where the source names one."""
    labels, authors = [], ""
    for p in published:
        source = p["source"]
        if not source.lower().startswith("same"):
            authors = re.split(r"[(,:]", source)[0].strip()
        k = re.search(r"k = (\d+)", source)
        labels.append(authors + (f", k = {k.group(1)}" if k else ""))
    return labels


def likelihood_section(workdir: str):
    from experiments import likelihood as exp

    numbers = _read_json(workdir, exp.NAME)
    if numbers is None:
        return None, not_run(exp.NAME)
    results = numbers["nll"]
    data = {
        "k": [r["k"] for r in results],
        "nll": [r["nll"] for r in results],
        "se": [r["standard_error"] for r in results],
        "published": [
            dict(p, label=label) for p, label in zip(numbers["published"], short_labels(numbers["published"]))
        ],
    }
    nlls = [r["nll"] for r in results]
    best = results[-1]
    verdict = (
        f"The estimate falls with k as it should (L<sub>k</sub> is non-decreasing in k in expectation): "
        f"{nlls[0]:.2f} nats at k = {results[0]['k']} (the ELBO) to {best['nll']:.2f} at k = {best['k']}."
        if exp.falls_with_k(nlls)
        else "The estimates do not fall monotonically with k here (the difference is within their noise)."
    )
    nll_table = table(
        ["k", "test NLL (nats)", "standard error", "time (s)"],
        [[fmt(r["k"]), f"{r['nll']:.2f}", f"{r['standard_error']:.2f}", f"{r['seconds']:.1f}"] for r in results],
    )
    published = table(
        ["model", "test NLL (nats)"], [[html.escape(p["source"]), f"{p['nll']:.2f}"] for p in numbers["published"]]
    )
    body = f"""
<p>{code("configs/vae_binarized_mnist.py")} (784&ndash;400&ndash;{numbers["latents"]}&ndash;400&ndash;784 MLP,
Bernoulli decoder) trained for {plural(numbers["epochs"], "epoch")} on the statically binarised MNIST. The ELBO is a
lower bound on log p(x); the importance-sampled estimate L<sub>k</sub> ({code("likelihood.model_log_likelihood")},
k samples from q(z|x)) tightens as k grows, so the test NLL = &minus;L<sub>k</sub> falls towards
&minus;log p(x). Test negative ELBO {numbers["test_neg_elbo"]:.2f} nats (reconstruction
{numbers["test_reconstruction"]:.2f} + KL {numbers["test_kl"]:.2f}); {numbers["active_units"]} of
{numbers["latents"]} latent units active; {numbers["test_images"]:,} test images.</p>
<div class="row">
  <figure><svg id="likelihood-svg" role="img" aria-label="test NLL against k"></svg>
  <figcaption>Test NLL (nats) against k, with &plusmn;2 standard errors over images; dashed: published
  VAEs on the same data.</figcaption></figure>
  <div>
  {nll_table}
  <p class="note">{verdict}</p>
  </div>
</div>
<p class="table-title">Published test NLLs on the same data (evaluated with k = 5000; their k is the number of
samples in the <i>training</i> objective):</p>
{published}
<p class="note">The published models were trained for thousands of epochs against {numbers["epochs"]} here, so a
gap is expected.</p>"""
    return data, body


SECTION_BUILDERS = {
    "pca_table": ("pca", pca_section),
    "pca_vs_linear_ae": ("linear", linear_section),
    "latent_space": ("latent", latent_section),
    "regularisation": ("reg", regularisation_section),
    "likelihood": ("likelihood", likelihood_section),
}
SHORT_TITLES = {
    "pca_table": "PCA's worked example",
    "pca_vs_linear_ae": "PCA vs a linear autoencoder",
    "latent_space": "AE vs VAE latent planes",
    "regularisation": "The KL weight \u03b2 and the decoder variance c",
    "likelihood": "The test log-likelihood",
}
LECTURE_PARTS = {
    "pca_table": "lecture, section 2",
    "pca_vs_linear_ae": "section 3",
    "latent_space": "sections 4\u20136",
    "regularisation": "sections 6\u20137",
    "likelihood": "section 7",
}


def _asset(name: str) -> str:
    with open(os.path.join(ASSETS, name)) as f:
        return f.read()


def _script_json(data) -> str:
    """JSON safe inside a <script> element (no '</' closes it)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def build_page(workdir: str) -> tuple[str, list[str]]:
    """The page's HTML for the experiments in ``workdir`` and the names of the sections not run yet."""
    data, sections, contents, missing = {}, [], [], []
    for i, (name, _) in enumerate(SECTIONS, start=1):
        key, builder = SECTION_BUILDERS[name]
        section_data, body = builder(workdir)
        data[key] = section_data
        if not os.path.exists(os.path.join(workdir, f"{name}.json")):
            missing.append(name)
        title = html.escape(SHORT_TITLES[name])
        contents.append(f'<li><a href="#{name}">{title}</a> <small>({LECTURE_PARTS[name]})</small></li>')
        sections.append(
            f'<section id="{name}"><h2><span class="num">{i}</span> {title} '
            f"<small>({LECTURE_PARTS[name]})</small></h2>{body}</section>"
        )
    built = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    source = html.escape(os.path.normpath(workdir))

    def render(size: str) -> str:
        return PAGE.format(
            css=_asset("lecture_page.css"),
            js=_asset("lecture_page.js"),
            data=_script_json(data),
            contents="".join(contents),
            sections="\n".join(sections),
            built=built,
            source=source,
            size=size,
            done=len(SECTIONS) - len(missing),
            total=len(SECTIONS),
        )

    page = render("0.0 MB")
    page = render(f"{len(page.encode()) / 1e6:.1f} MB")  # the same length: the number fits the placeholder
    return page, missing


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Variational autoencoders: the lecture, measured</title>
<style>
{css}
</style>
</head>
<body>
<header>
<h1>Variational autoencoders: the lecture, measured</h1>
<p class="lede">The argument of the lecture &ldquo;Variational autoencoders&rdquo; (2021), step by step, with
the numbers this repository's experiments measured and the models they trained. Drag the points, move the
pointer over the latent planes, choose a run: everything on this page is computed here, in your browser,
from the experiments' results.</p>
<nav><ol>{contents}</ol></nav>
</header>
<main>
{sections}
</main>
<footer>
<p>Built on {built} from <code>{source}</code> ({done} of {total} experiments run) by
<code>python -m experiments.report</code> (or <code>python -m experiments.lecture_page</code>). One file of
{size}: styles, script, data and the decoders' float32 weights are inside it; it makes no network request.</p>
</footer>
<script type="application/json" id="lecture-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def write_page(workdir: str, path: str | None = None) -> tuple[str, list[str]]:
    """Writes the page of ``workdir`` to ``path`` (default ``<workdir>/index.html``); returns the
    path and the names of the sections not run yet."""
    page, missing = build_page(workdir)
    path = path or os.path.join(workdir, NAME)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(page)
    return path, missing


def describe(path: str, missing: list[str]) -> str:
    size = os.path.getsize(path) / 1e6
    done = len(SECTIONS) - len(missing)
    return f"Wrote {path} ({size:.1f} MB): {done} of {len(SECTIONS)} sections" + (
        f"; not run yet: {', '.join(missing)}" if missing else "."
    )


def main(argv):
    del argv
    cli.check_flags(**common.flag_rules("workdir"))
    path, missing = write_page(common.workdir_root())
    print(describe(path, missing))


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
