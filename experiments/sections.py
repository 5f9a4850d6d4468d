"""The lecture's sections, in the lecture's order, one experiment each: `SECTIONS` and the
`command` that runs one (it writes ``<workdir>/<name>.{json,md}``). `experiments.report` joins
their Markdown into REPORT.md and `experiments.lecture_page` draws them as one interactive page;
both take the list and the commands from here (the report imports the page, not the reverse).
"""

from __future__ import annotations

# (name, title): each experiment's module name, and its title in the report's contents.
SECTIONS = (
    ("pca_table", "PCA's worked 2-D example (lecture section 2)"),
    ("pca_vs_linear_ae", "PCA vs a linear autoencoder (section 3)"),
    ("latent_space", "AE vs VAE latent spaces: holes, continuity, completeness (sections 4-6)"),
    ("regularisation", "The KL weight beta and the decoder variance c (sections 6-7)"),
    ("likelihood", "Test log-likelihood of a binarised-MNIST VAE (section 7)"),
)


def command(name: str) -> str:
    """The command that writes section ``name``."""
    extra = " --data_dir=<dir holding binarized_mnist/>" if name == "likelihood" else ""
    return f"python -m experiments.{name}{extra}"
