"""Sweeps (`vae_jax.training.sweep`, `vae_jax.training.loop`): specs, grouping, and members against their
separate runs, in turn (bit for bit) and vmapped (up to float rounding), with selection on
validation, early stopping, resume and a complete run in every member's folder."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import load_config, write_tiny_binarized_mnist

from experiments import evaluate
from vae_jax.training import checkpoints, loop, run, sweep, sweep_spec, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Members that differ in every value a group may vary: seed, beta, c, KL warm-up, learning
# rate, free bits.
MEMBERS = [
    {"beta": 0.5, "seed": 0},
    {"beta": 2.0, "seed": 1},
    {"c": 0.1, "kl_warmup_steps": 60},
    {"optimizer.learning_rate": 3e-3, "free_bits": 0.2},
]
NAMES = [
    "beta=0.5_seed=0",
    "beta=2.0_seed=1",
    "c=0.1_kl_warmup_steps=60",
    "optimizer.learning_rate=0.003_free_bits=0.2",
]


def read_records(workdir, split=None):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if split is None or r["split"] == split]


def test_spec_helpers_expand_products_lists_and_zips():
    assert sweep_spec.values("beta", [1, 2]) == [{"beta": 1}, {"beta": 2}]
    assert sweep_spec.product(sweep_spec.values("a", [1, 2]), sweep_spec.values("b", [3, 4])) == [
        {"a": 1, "b": 3},
        {"a": 1, "b": 4},
        {"a": 2, "b": 3},
        {"a": 2, "b": 4},
    ]
    assert sweep_spec.chain(sweep_spec.values("a", [1]), sweep_spec.fixed(b=2)) == [{"a": 1}, {"b": 2}]
    assert sweep_spec.zipped(sweep_spec.values("a", [1, 2]), sweep_spec.values("b", [3, 4])) == [
        {"a": 1, "b": 3},
        {"a": 2, "b": 4},
    ]
    with pytest.raises(validation.ConfigError):
        sweep_spec.zipped(sweep_spec.values("a", [1, 2]), sweep_spec.values("b", [3]))
    assert [sweep_spec.member_name(m) for m in MEMBERS] == NAMES
    assert sweep_spec.member_name({"model.encoder_hidden": (64, 32)}) == "model.encoder_hidden=64,32"


def test_overrides_are_checked_against_the_config():
    base = load_config("vae")
    config = sweep_spec.apply_overrides(base, {"optimizer.learning_rate": 3e-4, "beta": 2})
    assert config.optimizer.learning_rate == 3e-4 and config.beta == 2.0 and base.beta == 1.0
    with pytest.raises(
        validation.ConfigError,
        match=r"Sweep override.*'optimiser.learning_rate'.*did you mean "
        r"optimizer.learning_rate",
    ):
        sweep_spec.apply_overrides(base, {"optimiser.learning_rate": 1.0})
    with pytest.raises(validation.ConfigError, match=r"Sweep override.*beta='high' is invalid: expected a float"):
        sweep_spec.apply_overrides(base, {"beta": "high"})
    with pytest.raises(validation.ConfigError, match="twice"):
        sweep.expand(base, [{"beta": 1.0}, {"beta": 1.0}], "/tmp/unused")


def test_grouping_separates_shape_changing_values(tmp_path):
    base = load_config("vae")
    groups = sweep.group_members(
        sweep.expand(
            base,
            sweep_spec.chain(
                sweep_spec.product(sweep_spec.values("model.latents", [2, 3]), sweep_spec.values("seed", [0, 1])),
                sweep_spec.product(
                    sweep_spec.values("model.latents", [2]),
                    sweep_spec.values("optimizer.learning_rate", [1e-2]),
                    sweep_spec.values("c", [0.1]),
                    sweep_spec.values("kl_warmup_epochs", [10]),
                    sweep_spec.values("free_bits", [0.5]),
                ),
                sweep_spec.values("model.encoder_hidden", [(16,)]),
                sweep_spec.values("data.name", ["binarized_mnist"]),
            ),
            str(tmp_path),
        )
    )
    assert [(g.name, [m.name for m in g.members]) for g in groups] == [
        (
            "group-model.latents=2",
            [
                "model.latents=2_seed=0",
                "model.latents=2_seed=1",
                "model.latents=2_optimizer.learning_rate=0.01_c=0.1_kl_warmup_epochs=10_free_bits=0.5",
            ],
        ),
        ("group-model.latents=3", ["model.latents=3_seed=0", "model.latents=3_seed=1"]),
        ("group-model.encoder_hidden=16", ["model.encoder_hidden=16"]),
        ("group-data.name=binarized_mnist", ["data.name=binarized_mnist"]),
    ]
    assert all(m.workdir == os.path.join(str(tmp_path), m.name) for g in groups for m in g.members)


def test_execution_choice():
    cpu = jax.default_backend() == "cpu"
    assert loop.choose_execution("auto", 1, 10) == "in_turn"
    assert loop.choose_execution("auto", 8, 4_000) == "vmap"
    assert loop.choose_execution("auto", 8, 650_000) == ("in_turn" if cpu else "vmap")
    assert loop.choose_execution("vmap", 8, 650_000) == "vmap"
    assert loop.choose_execution("in_turn", 8, 4_000) == "in_turn"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 4-member sweep, in turn and vmapped, and the 4 separate runs it stands for."""
    root = tmp_path_factory.mktemp("sweep")
    base = load_config("vae")
    results = {
        execution: sweep.run_sweep(base, MEMBERS, str(root / execution), execution=execution)
        for execution in ("in_turn", "vmap")
    }
    separate = {}
    for overrides in MEMBERS:
        name = sweep_spec.member_name(overrides)
        run_dir = str(root / "separate" / name)
        final = run.train_and_evaluate(sweep_spec.apply_overrides(base, overrides), run_dir)
        separate[name] = (final, run.restore(run_dir)[3], read_records(run_dir))
    return base, root, results, separate


def test_members_in_turn_equal_their_separate_runs_bit_for_bit(swept):
    base, root, results, separate = swept
    assert list(results["in_turn"]) == NAMES
    params = sweep.member_params(base, MEMBERS, str(root / "in_turn"))
    for name, (final, separate_params, records) in separate.items():
        assert results["in_turn"][name].metrics == final
        jax.tree.map(np.testing.assert_array_equal, params[name], separate_params)
        logged = read_records(str(root / "in_turn" / name))
        assert [{k: v for k, v in r.items() if k != "examples_per_second"} for r in logged] == [
            {k: v for k, v in r.items() if k != "examples_per_second"} for r in records
        ]


def test_vmapped_members_equal_their_separate_runs(swept):
    base, root, results, separate = swept
    params = sweep.member_params(base, MEMBERS, str(root / "vmap"))
    for name, (final, separate_params, _) in separate.items():
        vmapped = results["vmap"][name].metrics
        assert vmapped.keys() == final.keys()
        for metric in final:
            np.testing.assert_allclose(vmapped[metric], final[metric], rtol=1e-5, err_msg=f"{name} {metric}")
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name),
            params[name],
            separate_params,
        )
    # The members really differ (each value reached the program as its own traced value).
    assert len({round(results["vmap"][name].metrics["loss"], 3) for name in NAMES}) == 4
    assert results["vmap"]["beta=2.0_seed=1"].metrics["kl"] < results["vmap"]["beta=0.5_seed=0"].metrics["kl"]


def test_each_member_folder_is_a_complete_run(swept):
    base, root, results, _ = swept
    workdir = str(root / "vmap")
    for name, overrides in zip(NAMES, MEMBERS):
        member_dir = os.path.join(workdir, name)
        assert {
            "config.json",
            "metrics.jsonl",
            "final_metrics.json",
            "reconstructions.png",
            "samples.png",
            "latent_scatter.png",
            "manifold.png",
            "checkpoints",
        } <= set(os.listdir(member_dir))
        config, _, _, _ = run.restore(member_dir)
        assert config == sweep_spec.apply_overrides(base, overrides)
        assert [r["epoch"] for r in read_records(member_dir, "train")] == list(range(1, base.num_epochs + 1))
        with open(os.path.join(member_dir, "final_metrics.json")) as f:
            assert json.load(f) == results["vmap"][name].metrics
        nll = evaluate.evaluate_run(member_dir, num_samples=2, split="test")
        assert nll["neg_elbo"] == pytest.approx(results["vmap"][name].metrics["neg_elbo"], rel=1e-5)
    with open(os.path.join(workdir, "sweep_results.json")) as f:
        table = json.load(f)
    assert [row["name"] for row in table["members"]] == NAMES
    assert all(
        row["metrics"] == results["vmap"][row["name"]].metrics and row["kept_epoch"] == base.num_epochs
        for row in table["members"]
    )
    with open(os.path.join(workdir, "sweep_results.md")) as f:
        markdown = f.read()
    assert all(f"| {name} |" in markdown for name in NAMES) and "pending" not in markdown and "epoch kept" in markdown


def test_rerun_of_a_finished_sweep_trains_nothing(swept, monkeypatch):
    base, root, results, _ = swept
    workdir = str(root / "in_turn")
    logs = {name: read_records(os.path.join(workdir, name)) for name in NAMES}
    monkeypatch.setattr(loop, "_train_epochs", lambda *a, **k: pytest.fail("a finished sweep trained again"))
    again = sweep.run_sweep(base, MEMBERS, workdir)
    assert {name: r.metrics for name, r in again.items()} == {name: r.metrics for name, r in results["in_turn"].items()}
    assert all(read_records(os.path.join(workdir, name)) == logs[name] for name in NAMES)


@pytest.mark.parametrize("execution", ["in_turn", "vmap"])
def test_members_killed_between_their_saves_resume_to_the_uninterrupted_result(execution, swept, tmp_path, monkeypatch):
    """Interrupted right after the first member's epoch-2 save (the second member is still at
    epoch 1): both go on from epoch 1 and end exactly as the uninterrupted sweep."""
    base, _, results, _ = swept
    members, saves = MEMBERS[:2], []
    real_save = checkpoints.save

    def save_then_die(manager, step, tree):
        real_save(manager, step, tree)
        saves.append(step)
        if len(saves) == 3:
            raise KeyboardInterrupt("killed after the first member's epoch-2 checkpoint")

    monkeypatch.setattr(checkpoints, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(base, members, str(tmp_path), execution=execution)
    monkeypatch.setattr(checkpoints, "save", real_save)
    steps = [sorted(checkpoints.open_manager(str(tmp_path / name)).all_steps()) for name in NAMES[:2]]
    assert steps[0][-1] == 2 * steps[1][-1]  # the first member ahead by one epoch
    resumed = sweep.run_sweep(base, members, str(tmp_path), execution=execution)
    # The uninterrupted result of the same program (a vmapped program of 2 members rounds
    # differently from the fixture's of 4).
    whole = (
        results["in_turn"]
        if execution == "in_turn"
        else sweep.run_sweep(base, members, str(tmp_path / "whole"), execution=execution)
    )
    for name in NAMES[:2]:
        assert resumed[name].metrics == whole[name].metrics
        assert [r["epoch"] for r in read_records(str(tmp_path / name))] == [1, 1, 2, 2, 3, 3]


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A sweep that selects on validation with early stopping: one member with a learning rate
    that stops early, one that trains to the end."""
    root = tmp_path_factory.mktemp("selected")
    base = load_config("vae_binarized_mnist")
    base.data.data_dir = write_tiny_binarized_mnist(str(root))
    base.model_selection, base.early_stopping_patience, base.num_epochs = "valid", 2, 8
    members = [{"optimizer.learning_rate": 0.3}, {"optimizer.learning_rate": 1e-3}]
    results = {
        execution: sweep.run_sweep(base, members, str(root / execution), execution=execution)
        for execution in ("in_turn", "vmap")
    }
    separate = {}
    for overrides in members:
        name = sweep_spec.member_name(overrides)
        run_dir = str(root / "separate" / name)
        separate[name] = (
            run.train_and_evaluate(sweep_spec.apply_overrides(base, overrides), run_dir),
            read_records(run_dir, "valid"),
        )
    return base, root, results, separate


@pytest.mark.parametrize("execution", ["in_turn", "vmap"])
def test_each_member_keeps_its_own_best_epoch_and_stops_alone(execution, selected):
    base, root, results, separate = selected
    stopped = []
    for name, (final, valid) in separate.items():
        result = results[execution][name]
        best = min(valid, key=lambda r: r["neg_elbo"])
        assert result.kept_epoch == best["epoch"]  # the separate run's selected epoch
        assert result.trained_epochs == len(valid)  # and its early stop
        for metric in final:
            np.testing.assert_allclose(result.metrics[metric], final[metric], rtol=1e-5, err_msg=f"{name} {metric}")
        member_valid = read_records(str(root / execution / name), "valid")
        assert [r["epoch"] for r in member_valid] == [r["epoch"] for r in valid]
        assert read_records(str(root / execution / name), "test") == []
        stopped.append(result.trained_epochs < base.num_epochs)
    assert stopped == [True, False]  # the fast member stopped while the other went on
    with open(os.path.join(str(root / execution), "sweep_results.md")) as f:
        markdown = f.read()
    for name in separate:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {results[execution][name].kept_epoch} | {results[execution][name].trained_epochs} |" in row


SWEEP_FILES = sorted(
    name
    for name in os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs", "sweeps"))
    if name.endswith(".py") and name != "__init__.py"
)


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_every_sweep_file_expands_into_valid_members(name, tmp_path):
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "sweeps", name)
    module = __import__(f"configs.sweeps.{name[:-3]}", fromlist=["get_config"])
    members = sweep.expand(module.get_config(), sweep.load_sweep_file(path), str(tmp_path))
    assert len(members) == len({m.name for m, _ in members}) > 1
