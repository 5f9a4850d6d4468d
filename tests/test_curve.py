"""The validation curve against training minutes (`vae_jax.training.curve`, `experiments.curve`)."""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import REPO

from vae_jax.training import curve


def records(rates, valid, steps_per_epoch=100):
    """A metrics.jsonl's records: epoch e trains ``steps_per_epoch`` steps at ``rates[e-1]``
    examples/s, then logs ``valid[e-1]`` as its validation negative ELBO."""
    out = []
    for epoch, (rate, value) in enumerate(zip(rates, valid), start=1):
        step = epoch * steps_per_epoch
        out.append({"step": step, "split": "train", "epoch": epoch, "examples_per_second": rate, "neg_elbo": 1.0})
        out.append({"step": step, "split": "valid", "epoch": epoch, "neg_elbo": value, "loss": value + 1})
    return out


def test_minutes_add_up_the_epochs_training_time_and_best_follows_selection():
    # 100 steps of 60 examples at 100 examples/s: 60 s per epoch; the second epoch at 50/s: 120 s.
    points = curve.validation_curve(records([100, 50, 100, 100], [90.0, 85.0, 87.0, 84.0]), batch_size=60)
    assert [p.epoch for p in points] == [1, 2, 3, 4]
    assert [p.minutes for p in points] == pytest.approx([1.0, 3.0, 4.0, 5.0])
    assert [p.value for p in points] == [90.0, 85.0, 87.0, 84.0]
    assert [(p.best, p.best_epoch) for p in points] == [(90.0, 1), (85.0, 2), (85.0, 2), (84.0, 4)]

    marks = curve.at_minutes(points, [0.5, 1, 3.5, 5, 6])
    assert [(m, None if p is None else p.epoch) for m, p in marks] == [(0.5, None), (1, 1), (3.5, 2), (5, 4), (6, None)]


def test_a_non_finite_epoch_is_never_best_and_an_epoch_without_validation_adds_its_time_only():
    rs = records([100, 100, 100], [90.0, math.nan, 80.0])
    rs = [r for r in rs if not (r["split"] == "valid" and r["epoch"] == 3)]
    points = curve.validation_curve(rs, batch_size=60)
    assert [p.epoch for p in points] == [1, 2]
    assert points[1].best == 90.0 and points[1].best_epoch == 1
    # Models without neg_elbo (autoencoders, PCA) are followed on their loss, as selection does.
    ae = [{k: v for k, v in r.items() if k != "neg_elbo"} for r in records([100], [3.0])]
    assert curve.validation_curve(ae, batch_size=60)[0].value == 4.0


def test_the_command_prints_the_marks_a_run_reached_and_refuses_a_workdir_without_a_run(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"batch_size": 60}))
    lines = [json.dumps(r) for r in records([100, 50, 100, 100], [90.0, 85.0, 87.0, 84.0])]
    (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n{partial")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
    plot = tmp_path / "curve.png"
    other = tmp_path / "other"  # a second run, slower: one figure holds both curves
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"batch_size": 60}))
    (other / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records([50, 50], [95.0, 91.0])) + "\n")
    flags = [f"--workdir={workdir},{other}", "--minutes=1,3.5,10", f"--plot={plot}"]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.curve", *flags], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 1 | 1 | 90.00 (1) |" in result.stdout and "| 3.5 | 2 | 85.00 (2) |" in result.stdout
    assert "| 10 |" not in result.stdout  # not reached: the run trained 5 minutes
    assert "| 5.0 (end) | 4 | 84.00 (4) |" in result.stdout
    assert f"{other}:" in result.stdout and "| 4.0 (end) | 2 | 91.00 (2) |" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(workdir)) == [
        "config.json",
        "metrics.jsonl",
    ]  # nothing written into the run

    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "experiments.curve", f"--workdir={empty}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --workdir=") and "holds no run" in result.stderr
