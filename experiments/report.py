"""Joins the experiments' Markdown sections into one page: ``python -m experiments.report
[--workdir=runs/lecture] [--nohtml]`` writes ``<workdir>/REPORT.md`` (in well under a second) and,
unless ``--nohtml``, the interactive page ``<workdir>/index.html`` (`experiments.lecture_page`:
one self-contained file built from the experiments' JSON and trained models; about 15 s).

Sections come in the lecture's order (pca_table, pca_vs_linear_ae, latent_space,
regularisation, likelihood); a section whose ``<workdir>/<name>.md`` does not exist yet is
listed with the command that makes it. Figures are linked relative to ``<workdir>``, so the
report is read in place (or with the directory copied whole).
"""

from __future__ import annotations

import os

from absl import flags

from experiments import cli, common

# `python -m experiments.report` runs this file as __main__, and experiments.lecture_page imports it
# again as experiments.report: the flag is defined by whichever comes first.
if "html" not in flags.FLAGS:
    flags.DEFINE_bool("html", True, "Also write the interactive page <workdir>/index.html (experiments.lecture_page).")

SECTIONS = (
    ("pca_table", "PCA's worked 2-D example (lecture section 2)"),
    ("pca_vs_linear_ae", "PCA vs a linear autoencoder (section 3)"),
    ("latent_space", "AE vs VAE latent spaces: holes, continuity, completeness (sections 4-6)"),
    ("regularisation", "The KL weight beta and the decoder variance c (sections 6-7)"),
    ("likelihood", "Test log-likelihood of a binarised-MNIST VAE (section 7)"),
)

INTRO = """\
The numbers and figures behind the lecture "Variational autoencoders" (2021), in the
lecture's order, produced by this repository's experiments. Each section below was
written by `python -m experiments.<name>`, which also writes its numbers to `<name>.json` and
trains its models in `workdirs/<name>/`, all in the experiments' directory (`--workdir`, by
default `runs/lecture/`), where `python -m experiments.report` writes this page. Re-running an
experiment reuses its trained models; re-running the report rebuilds the page."""


def command(name: str) -> str:
    """The command that writes section ``name``."""
    extra = " --data_dir=<dir holding binarized_mnist/>" if name == "likelihood" else ""
    return f"python -m experiments.{name}{extra}"


def build_report(workdir: str) -> tuple[str, list[str]]:
    """The report's Markdown and the names of the sections not run yet."""
    parts, missing = ["# Variational autoencoders: the lecture's claims, measured", INTRO], []
    contents = []
    for name, title in SECTIONS:
        path = os.path.join(workdir, f"{name}.md")
        if os.path.exists(path):
            contents.append(f"- {title}: `{name}`")
            with open(path) as f:
                parts.append(f.read().strip())
        else:
            contents.append(f"- {title}: not run yet")
            missing.append(name)
    parts.insert(2, "Sections:\n\n" + "\n".join(contents))
    if missing:
        parts.append("## Not run yet\n\n" + "\n".join(f"- {name}: not run yet: `{command(name)}`" for name in missing))
    return "\n\n".join(parts) + "\n", missing


def main(argv):
    del argv
    markdown, missing = build_report(common.workdir_root())
    path = common.output_path("REPORT.md")
    with open(path, "w") as f:
        f.write(markdown)
    done = len(SECTIONS) - len(missing)
    print(
        f"Wrote {path}: {done} of {len(SECTIONS)} sections"
        + (f"; not run yet: {', '.join(missing)}" if missing else ".")
    )
    if flags.FLAGS.html:
        from experiments import lecture_page  # lazy: it imports the experiments (and JAX)

        print(lecture_page.describe(*lecture_page.write_page(common.workdir_root())))


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
