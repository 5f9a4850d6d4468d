"""What every lecture experiment shares: where results go and how they are written.

Each experiment ``NAME`` writes ``<outdir>/NAME.json`` (its numbers), ``<outdir>/NAME.md``
(a Markdown section with the numbers and links to its figures) and ``<outdir>/NAME_*.png``;
``python -m experiments.report`` joins the sections into one page.
"""

from __future__ import annotations

import json
import os

from absl import flags

OUTDIR = flags.DEFINE_string("outdir", "runs/lecture", "Directory for the experiment's JSON, Markdown and PNG files.")


def output_path(name: str) -> str:
    """``<outdir>/<name>``, creating the directory."""
    os.makedirs(OUTDIR.value, exist_ok=True)
    return os.path.join(OUTDIR.value, name)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats are written with 4 significant digits."""
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, numbers: dict, markdown: str) -> None:
    """Writes ``NAME.json`` and ``NAME.md`` and prints the Markdown."""
    with open(output_path(f"{name}.json"), "w") as f:
        json.dump(numbers, f, indent=2, default=float)
    with open(output_path(f"{name}.md"), "w") as f:
        f.write(markdown.rstrip() + "\n")
    print(markdown)
