"""Shipped checkpoints (`experiments.export`, checkpoints/<name>): a run's parameters alone, read
back (JSON and orbax, never pickle) and evaluated by `experiments.evaluate` without training.

Every directory under the repository's checkpoints/ is checked the same way as a tiny export made
here: its config resolves, its parameter shapes are those of a freshly built model of that config,
and its recorded SHA-256 is present and matches."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, load_config, write_tiny_binarized_mnist

from experiments import evaluate
from vae_jax.errors import CheckpointError, ConfigError
from vae_jax.training import checkpoints, curve, export, run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHIPPED = os.path.join(REPO, "checkpoints")
# What an export directory holds: JSON files and one orbax checkpoint of the parameters.
EXPORT_FILES = {"config.json", "final_metrics.json", export.EXPORT_JSON, run.PARAMS_DIR}
# Files experiments.evaluate may write next to them (its results; its lock while it runs).
EVALUATION_FILES = ("nll_", ".lock")
# Words of the trainer's log lines (model summary, data placement, resuming, epoch progress).
TRAINING_LOG = ("Epoch", "epoch ", "steps of", "Resuming", "Training images", "examples/s")


# An absolute path in a text file: a "/" that starts a word (at the start, after a space, a quote,
# a backtick, "=", an opening bracket, "," or ";": not one inside a relative path, nor "://")
# followed by a name; or a drive letter, a backslash and a name.
ABSOLUTE_PATH = re.compile(r"""(?<![^\s'"`=(\[{,;])/[\w.~+-]|(?<![\w])[A-Za-z]:\\[\w.~+-]""")
# A machine's usual roots, looked for in every file, binary ones included (five bytes or more,
# which the arrays' data files do not hold by chance).
MACHINE_ROOTS = re.compile(rb"/(?:work|home|tmp|root|Users|mnt|scratch|private|var|opt|srv|media|gpfs|lustre)/")
# In a binary file (arrays, orbax's index) only what is at least this long is looked for: shorter
# strings turn up in random bytes (the host name "vm" does, in the shipped data files).
BINARY_MIN = 6


def host_names():
    """This machine's host name and, for a dotted one, its first label (lower case)."""
    name = socket.gethostname().strip().lower()
    return sorted({name, name.split(".")[0]} - {"", "localhost"})


def machine_specific(directory, also=()):
    """What in the files under ``directory`` names a machine, as ``[(file, [what, ...])]``: an
    absolute path (`ABSOLUTE_PATH` in a UTF-8 file; `MACHINE_ROOTS` in any file), this machine's
    host name as a word, or one of this machine's repository, temporary and home directories and
    ``also`` (paths) as a word (in a binary file: those of `BINARY_MIN` characters or more). The
    files experiments.evaluate writes beside an export (`EVALUATION_FILES`: its results; its
    lock, which names the host; git ignores them) are left out."""
    paths = {os.path.abspath(p) for p in (REPO, tempfile.gettempdir(), os.path.expanduser("~"), *also)} - {os.sep}
    words = [(f"host name {h!r}", h) for h in host_names()] + [(f"path {p!r}", p) for p in sorted(paths)]
    patterns = [
        (what, len(word), re.compile(rb"(?<![\w.-])" + re.escape(word.encode()) + rb"(?![\w.-])", re.IGNORECASE))
        for what, word in words
    ]
    found = []
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.startswith(EVALUATION_FILES) and run.is_export(root):
                continue  # <export>/nll_*.json, <export>/.lock
            with open(path, "rb") as f:
                data = f.read()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            what = [f"root {m.group().decode()!r}" for m in MACHINE_ROOTS.finditer(data)]
            if text is not None:
                what += [
                    f"absolute path {text[m.start() :].split(maxsplit=1)[0][:80]!r}"
                    for m in ABSOLUTE_PATH.finditer(text)
                ]
            what += [
                w for w, size, pattern in patterns if (text is not None or size >= BINARY_MIN) and pattern.search(data)
            ]
            if what:
                found.append((os.path.relpath(path, directory), what))
    return found


def shipped_directories():
    if not os.path.isdir(SHIPPED):
        return []
    return sorted(name for name in os.listdir(SHIPPED) if os.path.isdir(os.path.join(SHIPPED, name)))


@contextlib.contextmanager
def no_pickle():
    """Inside the block any use of pickle to load (pickle itself, or np.load with allow_pickle)
    fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used to load a shipped checkpoint")

    real_load = np.load

    def load(*args, allow_pickle=False, **kwargs):
        return refuse() if allow_pickle else real_load(*args, allow_pickle=False, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for name in ("load", "loads", "Unpickler"):
            patch.setattr(f"pickle.{name}", refuse)
        patch.setattr(np, "load", load)
        yield


def check_shipped(directory):
    """The checks every shipped directory passes: layout, config, shapes, digest, no optimiser state."""
    names = {name for name in os.listdir(directory) if not name.startswith(EVALUATION_FILES)}
    assert names == EXPORT_FILES, names
    for name in ("config.json", "final_metrics.json", export.EXPORT_JSON):
        with open(os.path.join(directory, name)) as f:
            json.load(f)
    for root, _, files in os.walk(os.path.join(directory, run.PARAMS_DIR)):
        for name in files:
            assert not name.endswith((".pkl", ".pickle", ".npy", ".npz")), os.path.join(root, name)
    with no_pickle():
        result = export.verify_export(directory)  # config resolves, shapes match a fresh model, digest verifies
    manager = checkpoints.open_manager(directory, name=run.PARAMS_DIR)
    try:
        steps = manager.all_steps()
        assert len(steps) == 1
        assert checkpoints.recorded_digest(manager, steps[0]) == result["sha256"]
    finally:
        manager.close()
    with open(os.path.join(directory, export.EXPORT_JSON)) as f:
        record = json.load(f)
    assert record["parameters"]["sha256"] == result["sha256"]
    assert record["parameters"]["count"] == result["parameters"]
    # Parameters only: the stored tree has exactly the parameters' arrays (no step, no optimiser state).
    stored = ocp.StandardCheckpointer().metadata(os.path.join(directory, run.PARAMS_DIR, str(steps[0]), "default"))
    assert key_paths(stored.item_metadata.tree) == key_paths(result["params"])
    return result


def key_paths(tree):
    return sorted(jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0])


def test_each_shipped_checkpoint_loads_and_verifies():
    for name in shipped_directories():  # none yet: the README's likelihood rows are exported as they are trained
        check_shipped(os.path.join(SHIPPED, name))


def test_no_shipped_file_names_the_machine_it_was_made_on():
    # Every file under checkpoints/ (the exports' JSON, orbax's metadata, index and array files,
    # its commit markers, the README): no absolute path, no host name of this machine.
    assert os.path.isdir(SHIPPED)
    assert machine_specific(SHIPPED) == []


def test_the_shipped_directory_explains_itself():
    with open(os.path.join(SHIPPED, "README.md")) as f:
        readme = f.read()
    assert "python -m experiments.export" in readme and "python -m experiments.evaluate" in readme
    for name in shipped_directories():  # each shipped one is listed
        assert f"`{name}`" in readme, name


def run_cli(script, *flags, **env):
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{script}", *flags],
        check=False,
        cwd=REPO,
        env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The data directory of a tiny finished binarised-MNIST VAE run that selects its epoch on
    validation, the run's directory, its final metrics and its test results for k = 16
    (evaluated in this process)."""
    root = tmp_path_factory.mktemp("shipped")
    config = load_config("vae_binarized_mnist")
    config.data.data_dir = write_tiny_binarized_mnist(str(root))
    config.model_selection = "valid"
    config.num_epochs = 2
    workdir = str(root / "run")
    final = run.train_and_evaluate(config, workdir)
    expected = evaluate.evaluate_run(workdir, num_samples=16, split="test", data_chunk=16, log_progress=False)
    return config.data.data_dir, workdir, final, expected


def test_an_exported_run_evaluates_to_the_runs_numbers_without_training(trained_run, tmp_path):
    data_dir, workdir, final, expected = trained_run
    output = str(tmp_path / "shipped" / "tiny")

    result = run_cli(
        "export", f"--workdir={workdir}", f"--output={output}", "--train_command=python -m experiments.train ..."
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{output} holds" in result.stdout and " MB in all" in result.stdout, result.stdout
    assert not os.path.exists(os.path.join(output, "checkpoints"))
    with open(os.path.join(output, export.EXPORT_JSON)) as f:
        record = json.load(f)
    assert record["source"]["checkpoint"] == "best_checkpoints" and record["source"]["state"].startswith("validation")
    assert record["train_command"] == "python -m experiments.train ..."
    assert record["export_command"].startswith("python -m experiments.export --workdir=")
    assert set(record["likelihoods"]) == {"nll_test_k16.json"}
    # The run's validation curve travels with it (the run's metrics.jsonl does not).
    assert export.recorded_curve(output) == curve.run_curve(workdir)
    assert [p.epoch for p in curve.run_curve(workdir)] == [1, 2]
    printed = run_cli("curve", f"--workdir={output}", "--minutes=1000")
    assert printed.returncode == 0, printed.stderr[-3000:]
    last = curve.run_curve(workdir)[-1]
    assert f"| {last.minutes:.1f} (end) | 2 | {last.best:.2f} ({last.best_epoch}) |" in printed.stdout, printed.stdout
    with open(os.path.join(output, "final_metrics.json")) as f:
        assert json.load(f) == final
    # The training machine's data directory is neither recorded nor used: the export looks where
    # data are looked for. Nothing written names the machine (the command line's absolute paths included).
    assert "data_dir" not in record["source"] and record["model"]["data"] == "binarized_mnist"
    with open(os.path.join(output, "config.json")) as f:
        assert json.load(f)["data"]["data_dir"] == ""
    assert machine_specific(output, also=(workdir, data_dir, output)) == []

    # The export holds the run's selected parameters, nothing else.
    shipped = check_shipped(output)
    source = run.restore_run(workdir)
    assert record["source"]["step"] == source.step
    for a, b in zip(jax.tree.leaves(shipped["params"]), jax.tree.leaves(source.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # Evaluated through the command line: the run's numbers exactly, and nothing trained.
    flags = (f"--workdir={output}", "--num_samples=16", "--split=test", "--data_chunk=16")
    result = run_cli("evaluate", *flags, VAE_JAX_DATA_DIR=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout[result.stdout.index("{") :])
    assert set(got) == set(expected)
    for key in expected:
        if key != "seconds":
            assert got[key] == expected[key], key
    progress = [line for line in result.stderr.splitlines() if "NLL k=16 (test): " in line]
    assert progress and "40 / 40 images (100.0%)" in progress[-1], result.stderr[-3000:]  # its progress lines
    for line in result.stderr.splitlines():  # no training: no epoch, model-summary or resume lines
        assert not any(word in line for word in TRAINING_LOG), line
    assert not os.path.exists(os.path.join(output, "checkpoints"))
    assert not os.path.exists(os.path.join(output, "best_checkpoints"))
    assert not os.path.exists(os.path.join(output, "metrics.jsonl"))
    assert sorted(n for n in os.listdir(output) if n.startswith("nll_")) == ["nll_test_k16.json"]


def test_an_export_names_nothing_of_the_machine_it_was_made_on(trained_run, tmp_path):
    data_dir, workdir, _, _ = trained_run
    output = str(tmp_path / "export")
    train = f"python -m experiments.train --workdir={workdir} --config.data.data_dir={data_dir}"
    command = f"python -m experiments.export --workdir={workdir} --output={output} '--train_command={train}'"
    export.export_run(workdir, output, train_command=train, command=command)

    assert machine_specific(output, also=(workdir, data_dir, output)) == []
    with open(os.path.join(output, export.EXPORT_JSON)) as f:
        record = json.load(f)
    # The run's directory relative to here, else by its name; commands' absolute paths likewise.
    assert record["source"]["workdir"] == export.portable_path(workdir) and not os.path.isabs(
        record["source"]["workdir"]
    )
    assert "data_dir" not in record["source"] and record["model"]["data"] == "binarized_mnist"
    portable = f"--workdir={export.portable_path(workdir)} --config.data.data_dir={export.portable_path(data_dir)}"
    assert record["train_command"] == f"python -m experiments.train {portable}"
    assert record["export_command"].startswith(
        f"python -m experiments.export --workdir={export.portable_path(workdir)} "
    )
    assert record["evaluate_command"] == f"python -m experiments.evaluate --workdir={export.portable_path(output)}"
    # Orbax's commit markers stay (orbax's commit-file mode, e.g. on gs://, takes a step without
    # one for an unfinished save) and name their directory within the export.
    step = str(record["source"]["step"])
    markers = {}
    for root, _, names in os.walk(os.path.join(output, run.PARAMS_DIR)):
        if export.COMMIT_SUCCESS_FILE in names:
            with open(os.path.join(root, export.COMMIT_SUCCESS_FILE)) as f:
                markers[os.path.relpath(root, output)] = f.read()
    assert markers == {
        where: f"Checkpoint commit was successful to {where}"
        for where in (f"{run.PARAMS_DIR}/{step}", f"{run.PARAMS_DIR}/{step}/default")
    }
    check_shipped(output)  # and it restores, with its digest verified, as orbax wrote it

    # The check sees what orbax writes there itself.
    with open(os.path.join(output, run.PARAMS_DIR, step, export.COMMIT_SUCCESS_FILE), "w") as f:
        f.write(f"Checkpoint commit was successful to {os.path.join(os.path.abspath(output), run.PARAMS_DIR, step)}")
    assert [name for name, _ in machine_specific(output)] == [f"{run.PARAMS_DIR}/{step}/{export.COMMIT_SUCCESS_FILE}"]


def test_an_export_refuses_an_unfinished_run_a_full_output_and_damage(trained_run, tmp_path):
    workdir = trained_run[1]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("")
    with pytest.raises(ConfigError, match="exists and is not an empty directory"):
        export.export_run(workdir, str(occupied))
    output = str(tmp_path / "export")
    record = export.export_run(workdir, output)
    assert record["bytes"] > 0
    assert not [n for n in os.listdir(tmp_path) if ".exporting-" in n]  # written aside, then renamed
    with pytest.raises(ConfigError, match="is an export already"):
        export.export_run(output, str(tmp_path / "again"))

    # Other arrays under the recorded digest (what a corrupted copy looks like to orbax, which
    # restores it without complaint): refused, never evaluated.
    step = str(record["source"]["step"])
    params = jax.tree.map(lambda leaf: np.asarray(leaf) + 1.0, run.restore(output)[3])
    manager = checkpoints.open_manager(str(tmp_path / "other"), name=run.PARAMS_DIR)
    checkpoints.save(manager, int(step), params)
    manager.close()
    shutil.rmtree(os.path.join(output, run.PARAMS_DIR, step, "default"))
    shutil.copytree(
        os.path.join(tmp_path, "other", run.PARAMS_DIR, step, "default"),
        os.path.join(output, run.PARAMS_DIR, step, "default"),
    )
    with pytest.raises(CheckpointError, match="do not match the SHA-256"):
        export.verify_export(output)
    with pytest.raises(CheckpointError, match="do not match the SHA-256"):
        evaluate.evaluate_run(output, num_samples=1, split="test", log_progress=False)

    # No recorded digest at all: refused as well (a shipped checkpoint must carry one).
    metadata = os.path.join(output, run.PARAMS_DIR, step, "_CHECKPOINT_METADATA")
    with open(metadata) as f:
        values = json.load(f)
    values["custom_metadata"] = {}
    with open(metadata, "w") as f:
        json.dump(values, f)
    with pytest.raises(CheckpointError, match="no recorded SHA-256"):
        run.restore(output)

    unfinished = str(tmp_path / "unfinished")
    os.makedirs(unfinished)
    with open(os.path.join(workdir, "config.json")) as f:
        config_json = f.read()
    with open(os.path.join(unfinished, "config.json"), "w") as f:
        f.write(config_json)
    with pytest.raises(ConfigError, match="holds no final_metrics.json"):
        export.export_run(unfinished, str(tmp_path / "from-unfinished"))
