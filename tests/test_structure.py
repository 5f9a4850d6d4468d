"""The library's layout holds: sub-packages import only downward, no import circles, and what a
model kind is lives in `vae_jax/models/` alone (read from the source with `ast`, nothing run)."""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The allowed order, bottom to top: a module may import modules of its own layer or of a lower one.
# The top-level modules not named in a later layer are the base (errors, config, losses, ...).
LAYERS = ["base", "models", "data", "evaluation", "training", "face"]
FACE = {"vae_jax", "vae_jax.trained"}  # the package's `load` and what it returns
# The classes of the model kinds: only vae_jax/models/ may name them.
MODEL_CLASSES = {"VAE", "LadderVAE", "Autoencoder", "PCA"}


def module_name(path: str) -> str:
    relative = os.path.relpath(path, REPO)[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def library_modules() -> dict[str, str]:
    paths = glob.glob(os.path.join(REPO, "vae_jax", "**", "*.py"), recursive=True)
    return {module_name(path): path for path in paths}


def layer(module: str) -> str:
    if module in FACE:
        return "face"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "base"


def imports_of(path: str, modules: dict[str, str]) -> set[str]:
    """The library modules ``path`` imports anywhere in it (functions included): ``from a import b``
    counts as ``a.b`` when that is a module, else as ``a``."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in colour:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = "black"
        return None

    for node in sorted(graph):
        if node not in colour:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_library_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 40, sorted(graph)  # the walk sees the sub-packages
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_sub_packages_import_only_downward():
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    ]
    assert not upward, "\n".join(upward)


def test_the_checks_catch_a_circle_and_an_upward_import():
    """The two checks above can fail: a made-up graph with a circle, and a model importing training."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert LAYERS.index(layer("vae_jax.training.loop")) > LAYERS.index(layer("vae_jax.models.vae"))
    assert layer("vae_jax.losses") == "base" and layer("vae_jax.trained") == "face"


def kind_uses(path: str) -> list[str]:
    """Where ``path`` names a model class or compares ``<...>.model.kind`` (or ``kind_of(...)``)."""
    found = []
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in MODEL_CLASSES:
            found.append(f"{path}:{node.lineno}: names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in MODEL_CLASSES:
            found.append(f"{path}:{node.lineno}: names {node.attr}")
        elif isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                if isinstance(operand, ast.Attribute) and operand.attr == "kind":
                    if isinstance(operand.value, ast.Attribute) and operand.value.attr == "model":
                        found.append(f"{path}:{node.lineno}: compares {ast.unparse(operand)}")
                if isinstance(operand, ast.Call) and ast.unparse(operand.func).endswith("kind_of"):
                    found.append(f"{path}:{node.lineno}: compares {ast.unparse(operand)}")
    return found


def test_nothing_outside_models_branches_on_the_kind_or_names_a_model_class():
    paths = [
        path
        for path in glob.glob(os.path.join(REPO, "vae_jax", "**", "*.py"), recursive=True)
        + glob.glob(os.path.join(REPO, "experiments", "*.py"))
        if os.sep + os.path.join("vae_jax", "models") + os.sep not in path
    ]
    uses = [use for path in paths for use in kind_uses(path)]
    assert not uses, "\n".join(uses)
    # ... while inside models/ the registry does compare it (the check sees what it looks for).
    assert kind_uses(os.path.join(REPO, "vae_jax", "models", "registry.py"))


def test_the_kind_check_sees_a_comparison_and_a_class(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("if config.model.kind == 'vae':\n    x = models.LadderVAE\nok = kind == 'x'\n")
    assert [use.split(": ", 1)[1] for use in kind_uses(str(path))] == [
        "compares config.model.kind",
        "names LadderVAE",
    ]


def test_losses_import_neither_flax_nor_optax():
    code = (
        "import sys, vae_jax.losses, vae_jax\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'optax', 'orbax'))\n"
        "assert not heavy, heavy\n"
        "assert callable(vae_jax.load) and 'flax' in sys.modules\n"  # the face loads them on first use
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("package", ["models", "data", "evaluation", "training"])
def test_every_sub_package_is_a_package(package):
    """setup.py's find_packages needs an __init__.py in each, or `pip install .` leaves it out."""
    assert os.path.isfile(os.path.join(REPO, "vae_jax", package, "__init__.py"))


def test_the_readme_layout_table_names_every_library_file():
    readme = open(os.path.join(REPO, "README.md")).read()
    layout = readme.split("## Layout: where each idea of the lecture lives", 1)[1]
    files = [
        os.path.relpath(path, REPO)
        for path in glob.glob(os.path.join(REPO, "vae_jax", "**", "*.py"), recursive=True)
        if not path.endswith("__init__.py")
    ]
    missing = sorted(f for f in files if f"`{f}`" not in layout)
    assert not missing, f"Library files the README's Layout table does not name: {missing}"
    named = set(re.findall(r"`(vae_jax/[\w/]+\.py)`", layout))
    assert not named - set(files), f"The Layout table names files that do not exist: {sorted(named - set(files))}"
