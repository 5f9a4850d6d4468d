"""The documentation names only flags and config keys that exist.

Sources: README.md, every Markdown file under docs/, the module docstrings of configs/*.py,
configs/sweeps/*.py, experiments/*.py and vae_jax/**/*.py, and every other string constant of
experiments/*.py and vae_jax/**/*.py, such as the error messages that tell a user what to pass.
The README must also list every config file, and end .ci/run's command (CI runs the README's).

- ``--config.<dotted.key>`` (with or without ``=value``): a leaf of
  `vae_jax.config.default_config()`.
- ``--<flag>`` inside a command ``python -m experiments.<script> ...``: a flag that script
  accepts, i.e. one registered with absl once the script's module is imported (each module in
  its own forked process, as each script runs alone), or absl's own (``--help``, ``--v``, ...);
  ``--no<flag>`` for a boolean flag. A command extends over its inline code span, or its line
  with continuation lines (a trailing backslash, or more indented lines in a docstring), and
  stops at ``&&``, ``;``, ``|``, ``&`` and ``#``.
- ``--<flag>`` elsewhere (not in code's string constants, where CSS uses ``--`` too): a flag of
  some script, unless a command of another program (pip, pytest, ruff, tensorboard, SLURM,
  ``XLA_FLAGS=``) precedes it in its code span or line.
- ``--config=<file>.py``: the file exists.
A failure lists every unknown name with the file and line where it appears.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from vae_jax import config as config_lib

# A key followed by a dot at the end of a string constant is the start of an f-string's key.
CONFIG_KEY = re.compile(r"--config\.(?=([A-Za-z_][\w.]*\w))\1(?!\.(?:\w|$))")  # (?=(...))\1: no backtracking
FLAG = re.compile(r"(?<![\w-])--([A-Za-z][\w-]*)")
COMMAND = re.compile(r"python3? -m experiments\.(\w+)")
# A command ends at a shell separator or a comment.
COMMAND_END = re.compile(r"&&|;|\||(?<![\w=])&|\s#")
# Programs whose flags are not ours: a flag after one of these (in its span or line) is skipped.
FOREIGN = re.compile(
    r"\b(?:pip3?|pytest|ruff|tensorboard|apt-get|srun|sbatch|mpirun|git)\b|#SBATCH|XLA_FLAGS=|"
    r"python3? -m (?!experiments\.)"
)
FENCE = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)
MARKDOWN_SPAN = re.compile(r"`([^`]+)`")
RST_SPAN = re.compile(r"``(.+?)``|`([^`]+)`", re.DOTALL)

# Lists each script's flags: heavy libraries are imported once, then each module is imported in a
# forked child (absl has one global flag registry, and train and sweep both define --config).
_FLAG_LISTER = r"""
import importlib, json, os, sys, traceback
for name in ("jax", "flax.linen", "optax", "orbax.checkpoint", "matplotlib.figure", "sklearn.linear_model",
             "ml_collections.config_flags", "absl.app", "vae_jax.training.run", "vae_jax.training.sweep",
             "vae_jax.evaluation.likelihood", "vae_jax.evaluation.latent_geometry"):
    importlib.import_module(name)
result = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            from absl import app, flags
            importlib.import_module(module)
            app.define_help_flags()
            names = sorted(flags.FLAGS)
            booleans = sorted(name for name in names if flags.FLAGS[name].boolean)
            answer = {"flags": names, "booleans": booleans}
        except BaseException:
            answer = {"error": traceback.format_exc(limit=3)}
        os.write(write, json.dumps(answer).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    result[module] = json.loads(text)
print(json.dumps(result))
"""


def _line(text: str, position: int, first_line: int) -> int:
    return first_line + text.count("\n", 0, position)


def _sources() -> list[tuple[str, int, str, str]]:
    """``(path, first line, text, kind)`` of every text checked; kind: markdown, docstring, code."""
    sources = []
    for path in ["README.md", *sorted(glob.glob("docs/**/*.md", root_dir=REPO, recursive=True))]:
        with open(os.path.join(REPO, path)) as f:
            sources.append((path, 1, f.read(), "markdown"))
    for pattern in ("configs/*.py", "configs/sweeps/*.py", "experiments/*.py", "vae_jax/**/*.py"):
        for path in sorted(glob.glob(pattern, root_dir=REPO, recursive=True)):  # vae_jax's sub-packages too
            with open(os.path.join(REPO, path)) as f:
                tree = ast.parse(f.read())
            body = tree.body
            docstring = None
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    docstring = body[0].value
            if docstring is not None:
                sources.append((path, docstring.lineno, docstring.value, "docstring"))
            if path.startswith(("vae_jax/", "experiments/")):
                for node in ast.walk(tree):
                    if node is docstring or not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                        continue
                    if "--" in node.value:
                        sources.append((path, node.lineno, node.value, "code"))
    return sources


def _spans(text: str, kind: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the inline code spans of ``text`` (outside fenced blocks)."""
    if kind == "code":
        return []
    if kind == "markdown":
        blanked = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
        return [m.span(1) for m in MARKDOWN_SPAN.finditer(blanked)]
    return [m.span(1) if m.group(1) is not None else m.span(2) for m in RST_SPAN.finditer(text)]


def _line_extent(text: str, start: int, docstring: bool) -> int:
    """The end of the logical line from ``start``: continued by a trailing backslash or, in a
    docstring, by following lines more indented than the line of ``start``."""
    line_start = text.rfind("\n", 0, start) + 1
    indent = len(text[line_start:start]) - len(text[line_start:start].lstrip())
    end = text.find("\n", start)
    while end != -1:
        following = text.find("\n", end + 1)
        following = len(text) if following == -1 else following
        next_line = text[end + 1 : following]
        continued = text[:end].rstrip(" ").endswith("\\")
        if docstring and next_line.strip():
            continued |= len(next_line) - len(next_line.lstrip()) > indent
        if not continued:
            return end
        end = following if following < len(text) else -1
    return len(text)


def _segment(spans: list[tuple[int, int]], text: str, position: int, docstring: bool) -> tuple[int, int]:
    """The code span holding ``position``, or its logical line."""
    for start, end in spans:
        if start <= position < end:
            return start, end
    line_start = text.rfind("\n", 0, position) + 1
    return line_start, _line_extent(text, position, docstring)


def _mentions_in(path: str, first_line: int, text: str, kind: str):
    """``(where, key)`` of each ``--config.<key>``; ``(where, module or None, flag)`` of each
    flag (None: not in a command of a script); ``(where, path)`` of each ``--config=<file>.py``."""
    keys, flags, config_files = [], [], []
    where = lambda position: f"{path}:{_line(text, position, first_line)}"  # noqa: E731
    for match in CONFIG_KEY.finditer(text):
        keys.append((where(match.start()), match.group(1)))
    for match in re.finditer(r"--config=([\w./-]+\.py)\b", text):
        config_files.append((where(match.start()), match.group(1)))
    spans = _spans(text, kind)
    docstring = kind == "docstring"
    in_command = set()
    for match in COMMAND.finditer(text):
        _, end = _segment(spans, text, match.start(), docstring)
        stop = COMMAND_END.search(text, match.end(), end)
        end = stop.start() if stop else end
        next_command = COMMAND.search(text, match.end(), end)
        end = next_command.start() if next_command else end
        for flag in FLAG.finditer(text, match.end(), end):
            in_command.add(flag.start())
            if not text.startswith("--config.", flag.start()):
                flags.append((where(flag.start()), f"experiments.{match.group(1)}", flag.group(1)))
    for flag in FLAG.finditer(text if kind != "code" else ""):  # code: CSS and JS use -- too
        if flag.start() in in_command or text.startswith("--config.", flag.start()):
            continue
        start, _ = _segment(spans, text, flag.start(), docstring)
        if FOREIGN.search(text, start, flag.start()):
            continue
        flags.append((where(flag.start()), None, flag.group(1)))
    return keys, flags, config_files


def _mentions():
    """`_mentions_in` of every source, joined."""
    keys, flags, config_files = [], [], []
    for source in _sources():
        found = _mentions_in(*source)
        keys, flags, config_files = keys + found[0], flags + found[1], config_files + found[2]
    return keys, flags, config_files


def _script_flags(modules: list[str]) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", _FLAG_LISTER, *modules],
        cwd=REPO,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _accepts(script: dict, flag: str) -> bool:
    if flag in script["flags"]:
        return True
    return flag.startswith("no") and flag[2:] in script["booleans"]


@pytest.fixture(scope="module")
def mentions():
    return _mentions()


def test_config_keys_named_in_the_docs_exist(mentions):
    keys, _, _ = mentions
    known = set(config_lib.dotted_keys(config_lib.default_config()))
    assert len(keys) > 20  # the extraction finds the keys (README alone names dozens)
    unknown = sorted(
        {f"{where}: --config.{key}: {config_lib.unknown_key_message(key)}" for where, key in keys if key not in known}
    )
    assert not unknown, "Unknown config keys named in the documentation:\n" + "\n".join(unknown)


def test_flags_named_in_the_docs_exist(mentions):
    _, flags, _ = mentions
    scripts = sorted(
        {f"experiments.{os.path.basename(p)[:-3]}" for p in glob.glob(os.path.join(REPO, "experiments", "*.py"))}
        - {"experiments.__init__"}
    )
    named = {module for _, module, _ in flags if module}
    accepted = _script_flags(sorted(set(scripts) | named))
    assert {"train", "sweep"} <= {module.split(".")[1] for module in named}
    problems = set()
    for where, module, flag in flags:
        if module is None:
            owners = [m for m in scripts if "flags" in accepted[m] and _accepts(accepted[m], flag)]
            if not owners:
                problems.add(f"{where}: --{flag}: no script defines this flag")
        elif "error" in accepted[module]:
            problems.add(f"{where}: python -m {module}: cannot be imported: {accepted[module]['error']}")
        elif not _accepts(accepted[module], flag):
            problems.add(f"{where}: --{flag}: not a flag of python -m {module}")
    assert not problems, "Unknown flags named in the documentation:\n" + "\n".join(sorted(problems))


def test_config_files_named_in_the_docs_exist(mentions):
    _, _, config_files = mentions
    missing = sorted(
        {f"{where}: --config={path}" for where, path in config_files if not os.path.isfile(os.path.join(REPO, path))}
    )
    assert not missing, "Config files named in the documentation that do not exist:\n" + "\n".join(missing)


def test_readme_lists_every_config():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    configs = glob.glob("configs/*.py", root_dir=REPO) + glob.glob("configs/sweeps/*.py", root_dir=REPO)
    missing = sorted(c for c in configs if not c.endswith("__init__.py") and f"`{c}`" not in readme)
    assert not missing, f"Config files the README does not list: {missing}"


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(REPO, ".ci", "run")) as f:
        last = [line for line in f.read().splitlines() if line.strip()][-1]
    with open(os.path.join(REPO, "README.md")) as f:
        readme_lines = [line.strip() for line in f.read().splitlines()]
    assert last.strip() in readme_lines, f"the last line of .ci/run is not a line of the README: {last}"


def test_extraction_on_known_text():
    """The rules on samples: commands in spans, fenced blocks and docstrings, continuations,
    separators, comments, foreign programs, f-string keys."""
    markdown = (
        "Run `python -m experiments.train --config=configs/vae.py --workdir=w` and\n"
        "`python -m experiments.benchmark\n--parts=sweep`; `tensorboard --logdir runs`, `--sample_chunk=16`.\n"
        "```bash\n"
        "XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m experiments.train \\\n"
        "    --config.model.latents=2 --num_processes=2 &  # --comment_flag\n"
        "pip install -e . && python -m experiments.evaluate --workdir=w\n"
        "#SBATCH --nodes=2\n"
        "```\n"
    )
    keys, flags, files = _mentions_in("R.md", 1, markdown, "markdown")
    assert keys == [("R.md:6", "model.latents")] and files == [("R.md:1", "configs/vae.py")]
    assert [(where, module and module.split(".")[1], flag) for where, module, flag in flags] == [
        ("R.md:1", "train", "config"),
        ("R.md:1", "train", "workdir"),
        ("R.md:3", "benchmark", "parts"),
        ("R.md:6", "train", "num_processes"),
        ("R.md:7", "evaluate", "workdir"),
        ("R.md:3", None, "sample_chunk"),
        ("R.md:6", None, "comment_flag"),  # after the command's end: checked against every script
    ]
    docstring = (
        "Command:\n"
        "  python -m experiments.likelihood --data_dir=DIR [--workdir=runs/lecture]\n"
        "      [--epochs=20]\n"
        "Use ``--split=valid``.\n"
    )
    _, flags, _ = _mentions_in("d.py", 1, docstring, "docstring")
    assert [(module, flag) for _, module, flag in flags] == [
        ("experiments.likelihood", "data_dir"),
        ("experiments.likelihood", "workdir"),
        ("experiments.likelihood", "epochs"),
        (None, "split"),
    ]
    keys, flags, _ = _mentions_in("c.py", 1, "--config.model.", "code")  # f"--config.model.{name}"
    assert keys == [] and flags == []
