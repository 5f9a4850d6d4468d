"""Joins the experiments' Markdown sections into one page: ``python -m experiments.report
[--workdir=runs/lecture] [--nohtml]`` writes ``<workdir>/REPORT.md`` (in well under a second) and,
unless ``--nohtml``, the interactive page ``<workdir>/index.html`` (`experiments.lecture_page`:
one self-contained file built from the experiments' JSON and trained models; about 15 s).

Sections come in the lecture's order (`experiments.sections`: pca_table, pca_vs_linear_ae,
latent_space, regularisation, likelihood); a section whose ``<workdir>/<name>.md`` does not
exist yet is listed with the command that makes it. Figures are linked relative to
``<workdir>``, so the report is read in place (or with the directory copied whole).
"""

from __future__ import annotations

import os

from absl import flags

from experiments import cli, common, lecture_page
from experiments.sections import SECTIONS, command

HTML = flags.DEFINE_bool(
    "html", True, "Also write the interactive page <workdir>/index.html (experiments.lecture_page)."
)

INTRO = """\
The numbers and figures behind the lecture "Variational autoencoders" (2021), in the
lecture's order, produced by this repository's experiments. Each section below was
written by `python -m experiments.<name>`, which also writes its numbers to `<name>.json` and
trains its models in `workdirs/<name>/`, all in the experiments' directory (`--workdir`, by
default `runs/lecture/`), where `python -m experiments.report` writes this page. Re-running an
experiment reuses its trained models; re-running the report rebuilds the page."""


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
    cli.check_flags(**common.flag_rules("workdir"))
    markdown, missing = build_report(common.workdir_root())
    path = common.output_path("REPORT.md")
    with open(path, "w") as f:
        f.write(markdown)
    done = len(SECTIONS) - len(missing)
    print(
        f"Wrote {path}: {done} of {len(SECTIONS)} sections"
        + (f"; not run yet: {', '.join(missing)}" if missing else ".")
    )
    if HTML.value:
        print(lecture_page.describe(*lecture_page.write_page(common.workdir_root())))


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
