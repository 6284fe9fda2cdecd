"""Overfitting: the detector on hand-made curves, the recorder that stores it, and real
searches that do and do not overfit."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.search.overfitting import (
    DEFAULT_PATIENCE,
    EpochLosses,
    generalization_gap,
    overfit_epoch,
    overfitting_patience,
)
from app.search.spec_sections import EarlyStoppingSpec
from app.store.claims import Claim
from app.store.models import Job, Trial
from app.store.queue import claim_job
from app.store.unit_of_work import write_session
from tests.conftest import sqlite_only
from tests.factories import (
    dataset_row,
    noisy_labels_frame,
    regression_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)


def curve(
    losses: list[float | None], val_losses: list[float | None], start: int = 0
) -> list[EpochLosses]:
    return [
        (start + i, loss, val) for i, (loss, val) in enumerate(zip(losses, val_losses, strict=True))
    ]


FALLING = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_val_rising_while_loss_falls_for_patience_epochs_is_overfitting() -> None:
    # val_loss bottoms out at epoch 2, then rises for 5 epochs while loss keeps falling.
    val = [1.0, 0.9, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert overfit_epoch(curve(FALLING, val), patience=5) == 2
    assert overfit_epoch(curve(FALLING, val), patience=3) == 2
    # Epochs are reported as recorded (a Hyperband trial may start at epoch 3).
    assert overfit_epoch(curve(FALLING, val, start=3), patience=5) == 5


def test_the_first_long_enough_divergence_counts() -> None:
    # A 2-epoch rise (epochs 1..3) is noise at patience 3; the one from epoch 4 is not.
    val = [1.0, 0.9, 0.95, 1.0, 0.8, 0.85, 0.9, 0.95]
    assert overfit_epoch(curve(FALLING, val), patience=3) == 4
    assert overfit_epoch(curve(FALLING, val), patience=2) == 1


def test_val_rising_with_training_loss_rising_too_is_not_overfitting() -> None:
    # Both losses climb: the model is diverging (learning rate too high), not overfitting.
    rising = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    assert overfit_epoch(curve(rising, [v + 0.1 for v in rising]), patience=5) is None
    # One epoch of rising training loss inside the window breaks the run.
    bump = [1.0, 0.8, 0.6, 0.5, 0.55, 0.3, 0.2, 0.1]
    val = [1.0, 0.9, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert overfit_epoch(curve(bump, val), patience=4) is None


def test_a_rise_shorter_than_patience_is_not_overfitting() -> None:
    val = [1.0, 0.9, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]  # 5 rising epochs
    assert overfit_epoch(curve(FALLING, val), patience=6) is None
    assert overfit_epoch(curve(FALLING, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]), 1) is None
    assert overfit_epoch([], patience=5) is None


def test_a_missing_loss_breaks_a_run() -> None:
    val: list[float | None] = [1.0, 0.9, 0.7, 0.75, None, 0.85, 0.9, 0.95]
    assert overfit_epoch(curve(FALLING, val), patience=3) is None
    assert overfit_epoch(curve(FALLING, val), patience=2) == 5  # 0.85 -> 0.9 -> 0.95


def test_generalization_gap_is_taken_at_the_best_epoch() -> None:
    losses, val = [1.0, 0.5, 0.25], [1.5, 0.75, 1.0]
    assert generalization_gap(curve(losses, val), best_epoch=1) == pytest.approx(0.25)
    # A Hyperband trial that continues from epoch 3 has epochs 3, 4, 5.
    assert generalization_gap(curve(losses, val, start=3), best_epoch=5) == pytest.approx(0.75)
    assert generalization_gap(curve(losses, val), best_epoch=None) is None
    assert generalization_gap(curve(losses, val), best_epoch=3) is None
    assert generalization_gap(curve([1.0], [None]), best_epoch=0) is None


def test_patience_follows_early_stopping_else_five() -> None:
    assert overfitting_patience(EarlyStoppingSpec(patience=3)) == 3
    assert overfitting_patience(None) == DEFAULT_PATIENCE == 5
    assert overfitting_patience(EarlyStoppingSpec(patience=0)) == 1


def _claimed_job(engine: Engine) -> Claim:
    with write_session(engine) as session:
        dataset = dataset_row()
        session.add(dataset)
        session.flush()
        session.add(Job(dataset_id=dataset.id, spec={}, search_space={}, trials_planned=1))
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id="w", lease_s=60)
    assert claim is not None
    return claim


def _record(engine: Engine, claim: Claim, patience: int | None) -> Trial:
    from app.store.search_gateway import SearchDatabase
    from tuner_jobs.search.recorder import TrialRecorder

    database = SearchDatabase(engine, claim)
    recorder = (
        TrialRecorder(database) if patience is None else TrialRecorder(database, patience=patience)
    )
    trial_id = f"p{patience}"
    recorder.trial_started(trial_id, {"units_0": 8})
    # val_loss turns after epoch 1 and rises for 3 epochs while loss keeps falling.
    losses = [(1.0, 1.2), (0.8, 1.0), (0.6, 1.1), (0.4, 1.2), (0.2, 1.3)]
    for epoch, (loss, val) in enumerate(losses):
        recorder.epoch_ended(trial_id, epoch, {"loss": loss, "val_loss": val}, 0.01)
    recorder.trial_ended(
        trial_id,
        status="COMPLETED",
        score=1.0,
        best_epoch=1,
        stopped_early=False,
        message=None,
        duration_s=1.0,
    )
    with Session(engine) as session:
        return session.scalars(select(Trial).where(Trial.trial_id == trial_id)).one()


def test_the_recorder_stores_the_assessment_with_its_patience(engine: Engine) -> None:
    claim = _claimed_job(engine)
    assert _record(engine, claim, patience=3).overfit_epoch == 1
    default = _record(engine, claim, patience=None)  # 5: three rising epochs are not enough
    assert default.overfit_epoch is None
    assert default.generalization_gap == pytest.approx(0.2)


# A network far too wide for 32 training rows of mostly-noise labels, trained long and hard.
OVERFIT_SPACE = {
    "num_layers": {"type": "fixed", "value": 2},
    "units": {"type": "fixed", "value": 512},
    "activation": {"type": "fixed", "value": "relu"},
    "dropout": {"type": "fixed", "value": 0.0},
    "kernel_initializer": {"type": "fixed", "value": "glorot_uniform"},
    "optimizer": {"type": "fixed", "value": "adam"},
    "learning_rate": {"type": "fixed", "value": 0.01},
    "batch_size": {"type": "fixed", "value": 8},
    "l2": {"type": "fixed", "value": 0.0},
}
# A small network with strong dropout and L2 on a linear problem with plenty of rows.
REGULARIZED_SPACE = {
    **OVERFIT_SPACE,
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "fixed", "value": 16},
    "dropout": {"type": "fixed", "value": 0.5},
    "l2": {"type": "fixed", "value": 0.01},
    "learning_rate": {"type": "fixed", "value": 0.003},
    "batch_size": {"type": "fixed", "value": 32},
}


@pytest.mark.slow
@sqlite_only
def test_an_overfitting_search_is_flagged_and_a_regularized_one_is_not(
    api: httpx.Client, start_worker
) -> None:
    noisy = upload_ok(api, noisy_labels_frame(rows=40), "label")
    linear = upload_ok(api, regression_frame(rows=1000, features=4), "target value")
    one_trial = {"algorithm": "random_search", "max_trials": 1, "seed": 42}
    overfit = submit(
        api,
        noisy["id"],
        tuner=one_trial,
        objective={"name": "val_loss"},
        training={"epochs": 60},
        callbacks={"early_stopping": False},
        search_space=OVERFIT_SPACE,
    )
    regularized = submit(
        api,
        linear["id"],
        tuner=one_trial,
        training={"epochs": 60},
        callbacks={"early_stopping": {"patience": DEFAULT_PATIENCE}},
        search_space=REGULARIZED_SPACE,
    )
    start_worker()

    results = {}
    for name, job in {"overfit": overfit, "regularized": regularized}.items():
        assert wait_for_job(api, job["id"], timeout=180)["status"] == "succeeded"
        (trial,) = trials_of(api, job["id"])
        detail = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()
        points = [(m["epoch"], m["loss"], m["val_loss"]) for m in detail["metrics"]]
        # What the API shows is what the recorder computed from the stored curve.
        assert detail["overfit_epoch"] == trial["overfit_epoch"]
        assert trial["overfit_epoch"] == overfit_epoch(points, DEFAULT_PATIENCE)
        assert trial["generalization_gap"] == pytest.approx(
            generalization_gap(points, trial["best_epoch"])
        )
        results[name] = (trial, points)

    trial, points = results["overfit"]
    assert trial["epochs_run"] == 60
    assert not trial["stopped_early"]
    assert trial["overfit_epoch"] is not None
    assert trial["generalization_gap"] > 0
    turn = trial["overfit_epoch"]
    after = [p for p in points if turn <= p[0] <= turn + DEFAULT_PATIENCE]
    assert all(b[2] > a[2] and b[1] < a[1] for a, b in zip(after, after[1:], strict=False))
    # The best epoch (lowest val_loss) is the turning point or before it.
    assert trial["best_epoch"] <= turn

    trial, _ = results["regularized"]
    assert trial["overfit_epoch"] is None
    # Dropout and the L2 penalty raise the training loss above the validation loss.
    assert trial["generalization_gap"] < 0
