"""Model selection and early stopping on the validation split."""

import json
import math
import os

import pytest

from vae_jax.data import datasets
from vae_jax.models import interface
from vae_jax.training import checkpoints, programs, run, selection

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def read_metrics(workdir, split):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def best_checkpoint_step(workdir):
    manager = checkpoints.open_manager(workdir, name=selection.CHECKPOINT_DIR)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def load_split(config, split):
    return datasets.load_dataset(config.data.name, data_dir=config.data.data_dir)[split].images


class TestBestEpoch:
    def test_tracks_the_lowest_finite_criterion(self):
        best = selection.BestEpoch(patience=2)
        assert best.update(1, {"loss": 5.0, "neg_elbo": 10.0})
        assert not best.update(2, {"loss": 1.0, "neg_elbo": 11.0})  # neg_elbo decides, not loss
        assert not best.update(3, {"neg_elbo": math.nan})
        assert (best.epoch, best.value) == (1, 10.0)
        assert not best.should_stop(2) and best.should_stop(3)
        assert best.update(4, {"loss": 9.0})  # an autoencoder's criterion is its loss
        assert (best.epoch, best.value) == (4, 9.0)

    def test_no_patience_never_stops(self):
        best = selection.BestEpoch()
        best.update(1, {"loss": 1.0})
        assert not best.should_stop(1000)

    def test_rebuilt_from_the_valid_lines_up_to_a_step(self, tmp_path):
        path = str(tmp_path / "metrics.jsonl")
        lines = [
            {"step": 10, "split": "valid", "epoch": 1, "neg_elbo": 5.0},
            {"step": 10, "split": "test", "epoch": 1, "neg_elbo": 1.0},
            {"step": 20, "split": "valid", "epoch": 2, "neg_elbo": 4.0},
            {"step": 30, "split": "valid", "epoch": 3, "neg_elbo": 3.0},
        ]
        with open(path, "w") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines) + '{"partial')
        best = selection.BestEpoch.from_log(path, last_step=20, patience=3)
        assert (best.epoch, best.value, best.patience) == (2, 4.0, 3)
        assert selection.BestEpoch.from_log(str(tmp_path / "none.jsonl"), 20, 0).epoch == 0


def test_selected_epoch_gives_the_final_metrics(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("vae_binarized_mnist")
    config.model_selection = "valid"
    config.num_epochs = 4
    # Validation "gets worse" after epoch 2: the selected state is epoch 2's, not the last one.
    criteria = iter([3.0, 1.0, 2.0, 2.5])
    monkeypatch.setattr(selection, "criterion", lambda metrics: next(criteria))
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    assert next(criteria, None) is None  # one criterion per validation epoch
    valid = read_metrics(workdir, "valid")
    assert [r["epoch"] for r in valid] == [1, 2, 3, 4]
    assert best_checkpoint_step(workdir) == valid[1]["step"]
    assert read_metrics(workdir, "test") == []  # the test split is evaluated once, at the end
    resolved, fns, model, params = run.restore(workdir)  # the finished run's selected state: epoch 2's
    evaluate = programs.make_evaluate(fns, config.eval_batch_size)
    test_images, keys = load_split(config, "test"), programs.run_keys(config.seed)
    on_test = evaluate(params, test_images, keys["eval"], interface.hyper(config))
    for name, value in final.items():
        assert value == pytest.approx(on_test[name], rel=1e-5), name
    # The last epoch's state (the latest regular checkpoint) has other test metrics.
    template = programs.create_train_state(fns, resolved, 1, keys["init"], 0)
    manager = checkpoints.open_manager(workdir)
    try:
        assert manager.latest_step() == valid[-1]["step"]
        last = checkpoints.restore_latest(manager, template)
    finally:
        manager.close()
    on_test_last = evaluate(last.params, test_images, keys["eval"], interface.hyper(config))
    assert final["neg_elbo"] != pytest.approx(on_test_last["neg_elbo"], rel=1e-4)


def test_early_stopping_stops_and_stays_stopped(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("vae_binarized_mnist")
    config.model_selection = "valid"
    config.early_stopping_patience = 2
    config.num_epochs = 6
    # Only the first epoch counts as an improvement: the run must stop after epoch 3.
    monkeypatch.setattr(selection, "criterion", lambda metrics: 1.0)
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    assert [r["epoch"] for r in read_metrics(workdir, "train")] == [1, 2, 3]
    assert best_checkpoint_step(workdir) == read_metrics(workdir, "valid")[0]["step"]
    again = run.train_and_evaluate(config, workdir)  # re-run: still stopped, same result
    assert [r["epoch"] for r in read_metrics(workdir, "train")] == [1, 2, 3]
    assert again == final


def test_resumed_selection_matches_an_uninterrupted_run(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    config.model_selection = "valid"
    config.optimizer.learning_rate = 3e-2
    config.num_epochs = 4
    whole = run.train_and_evaluate(config, str(tmp_path / "whole"))
    config.num_epochs = 2
    run.train_and_evaluate(config, str(tmp_path / "parts"))
    config.num_epochs = 4
    resumed = run.train_and_evaluate(config, str(tmp_path / "parts"))
    assert resumed == whole
    assert read_metrics(str(tmp_path / "parts"), "valid") == read_metrics(str(tmp_path / "whole"), "valid")
