"""`make bench-floor`: the least a cross-validated trial can cost with Keras's `fit`.

`make bench-speed` measures a whole search; this measures one trial in a bare process,
with nothing else running in it, on the 569-row breast-cancer table (scikit-learn's,
standardized; 455 rows in 5 stratified folds, as a default job has them once 20% are held
out): the service's own network and input (tuner_jobs.search.model_builder: tf.data, 32
steps per execution), networks from the default search space for its width, handed out
as a search hands them out (tuner_jobs.search.model_reuse.ModelCache).

Two ways of building them, each its own rows (`--widths`):

- **padded** (what a search on this table chooses, tuner_jobs.search.padded): each
  network is padded to the space's widest, so a model serves its whole family (layers,
  activation, optimizer). Before each network, another configuration of its family (other
  widths and dropout rate) is trained, as a search's earlier trials would have: the first
  of a family builds, compiles and traces (the **new family** clock, at most once per
  family and process: 16 families in the default space), the network timed then is
  **new** to the process but not its family;
- **real**: each network of its real widths, as before padding: a **new network**
  builds, compiles and traces.

For each network, three clocks: a **new** network's trial (its model handed out, then
each of the 5 folds fitted for EPOCHS epochs on the one model, as model reuse does for
a trial's folds); the same 5 fits again (a **network seen before**); and its **steps**
(a traced fit's wall time per epoch, over STEP_EPOCHS epochs to quiet the noise, times 5
folds x EPOCHS; benchmarks/step_time.py times bench-speed's alike). The fixed cost of
each kind of trial is its clock minus its steps: the building, compiling and tracing, and
`fit`'s own work per call (callbacks, iterators, the validation pass's set-up). The
medians over the networks are compared with the target: under 0.15 s for a new network.

    python -m benchmarks.fit_floor [--epochs 2,6] [--widths padded,real]
        [--steps-per-execution 1]

`--steps-per-execution` overrides the service's 32 (model_builder.STEPS_PER_EXECUTION)
in this process, to weigh a simpler traced function (no loop) against more calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks.__main__ import load, print_report
from benchmarks.report import Row

FOLDS = 5
STEP_EPOCHS = 6  # epochs of one traced fit timed for the steps' cost
# (num_layers, units per layer, activation, dropout, optimizer): networks the default space
# for 30 inputs holds (units 16 to 128), a spread of sizes.
NETWORKS = [
    (1, (64,), "relu", 0.0, "adam"),
    (1, (128,), "tanh", 0.2, "rmsprop"),
    (2, (32, 64), "relu", 0.1, "adam"),
    (2, (128, 16), "tanh", 0.0, "adam"),
    (3, (64, 64, 32), "relu", 0.3, "rmsprop"),
    (1, (16,), "relu", 0.4, "adam"),
    (2, (64, 128), "relu", 0.0, "rmsprop"),
    (3, (128, 32, 16), "tanh", 0.1, "adam"),
]


def _data() -> tuple[object, object, list[tuple[object, object]]]:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x, _, y, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=1)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype("float32")
    y = y.astype("float32")
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=1)
    return x, y, [(fit, held) for fit, held in folds.split(np.zeros(len(y)), y)]


def _hyperparameters(network: tuple) -> object:
    import keras_tuner as kt

    from tuner_jobs.search.hyperparameters import units_name

    layers, units, activation, dropout, optimizer = network
    hp = kt.HyperParameters()
    values = {
        "num_layers": layers,
        "activation": activation,
        "dropout": dropout,
        "kernel_initializer": "glorot_uniform",
        "optimizer": optimizer,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "l2": 0.0,
        "batch_norm": False,
        **{units_name(layer): width for layer, width in enumerate(units)},
    }
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def _family_opener(network: tuple) -> tuple:
    """Another configuration of `network`'s family: other widths, another dropout rate."""
    layers, units, activation, dropout, optimizer = network
    return (layers, (16,) * layers, activation, 0.2 if dropout == 0 else 0.0, optimizer)


def measure(epochs: int, widths: str) -> dict[str, float]:
    """Medians over NETWORKS of each clock and of each trial's fixed cost (seconds per
    trial of 5 folds x `epochs`); `widths`: "padded" or "real"."""
    from types import SimpleNamespace

    import keras

    from app.search.search_space import effective_search_space
    from tuner_jobs.search.data import Head
    from tuner_jobs.search.hyperparameters import build_hyperparameters
    from tuner_jobs.search.model_builder import DenseHyperModel
    from tuner_jobs.search.model_reuse import ModelCache
    from tuner_jobs.search.padded import space_widths

    x, y, folds = _data()
    hypermodel = DenseHyperModel(
        input_width=x.shape[1],  # type: ignore[attr-defined]
        head=Head(1, "sigmoid", "binary_crossentropy", ("accuracy",)),
        seed=1,
    )
    cache = ModelCache()
    if widths == "padded":
        space = build_hyperparameters(effective_search_space({}, features=x.shape[1]))  # type: ignore[attr-defined]
        cache.pad(space_widths(space))
    tuner = SimpleNamespace(hypermodel=hypermodel)

    def trial(model: keras.Model, hp: object, per_fold: int, parts: list | None = None) -> None:
        for fit, held in parts or folds:
            hypermodel.fit(
                hp,
                model,
                x[fit],  # type: ignore[index]
                y[fit],  # type: ignore[index]
                validation_data=(x[held], y[held]),  # type: ignore[index]
                epochs=per_fold,
                verbose=0,
            )

    def steps_of(model: keras.Model, hp: object) -> float:
        timed = time.perf_counter()
        trial(model, hp, STEP_EPOCHS, folds[:1])  # traced: one fold's epochs, steps alone
        return (time.perf_counter() - timed) / STEP_EPOCHS * FOLDS * epochs

    # TensorFlow's own first-use costs (thread pools, kernels) are not a trial's.
    warm = _hyperparameters(NETWORKS[0])
    trial(hypermodel.build(warm), warm, 1)
    keras.backend.clear_session()
    names = ("new", "seen", "steps", "new_fixed", "seen_fixed", "family_fixed")
    clocks: dict[str, list[float]] = {name: [] for name in names}
    for network in NETWORKS:
        if widths == "padded":
            opener = _hyperparameters(_family_opener(network))
            builds, started = cache.builds, time.perf_counter()
            model = cache.model_for(tuner, opener)
            trial(model, opener, epochs)
            if cache.builds > builds:  # the first of its family here: built and traced
                wall = time.perf_counter() - started
                clocks["family_fixed"].append(wall - steps_of(model, opener))
        hp = _hyperparameters(network)
        started = time.perf_counter()
        model = cache.model_for(tuner, hp)
        trial(model, hp, epochs)
        built = time.perf_counter()
        model = cache.model_for(tuner, hp)
        trial(model, hp, epochs)
        seen = time.perf_counter()
        steps = steps_of(model, hp)
        clocks["new"].append(built - started)
        clocks["seen"].append(seen - built)
        clocks["steps"].append(steps)
        clocks["new_fixed"].append(built - started - steps)
        clocks["seen_fixed"].append(seen - built - steps)
    return {name: statistics.median(values) for name, values in clocks.items() if values}


def rows(epochs_list: list[int], widths_list: list[str]) -> list[Row]:
    out = []
    for epochs in epochs_list:
        for widths in widths_list:
            got = measure(epochs, widths)
            steps, new, seen = got["steps"], got["new_fixed"], got["seen_fixed"]
            padded = widths == "padded"
            out += [
                Row(
                    f"fit floor: {FOLDS} folds x {epochs} epochs, {widths} widths",
                    "trial of a new network: wall time, fixed cost (wall less its steps), median",
                    f"{got['new']:.3f} s, {new:.3f} s",
                    "< 0.15 s",
                    met=new < 0.15,
                    note="its family traced before: assigns, then 5 fits"
                    if padded
                    else "build, compile and trace once, then 5 fits",
                ),
            ]
            if padded:
                out.append(
                    Row(
                        "",
                        "trial of a new family's first network: fixed cost, median",
                        f"{got['family_fixed']:.3f} s",
                        note="build, compile and trace: once per family and process",
                    )
                )
            out += [
                Row(
                    "",
                    "trial of a network seen before (model reuse): wall time, fixed cost, median",
                    f"{got['seen']:.3f} s, {seen:.3f} s",
                    "< 0.15 s",
                    met=seen < 0.15,
                    note=f"5 fits of a traced model: {seen / FOLDS * 1000:.0f} ms of fixed "
                    "cost each",
                ),
                Row("", "its epochs' steps (training and validation)", f"{steps:.3f} s"),
            ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fit_floor", description=__doc__)
    parser.add_argument("--epochs", default="2,6", help="epochs per fold, e.g. 2,6")
    parser.add_argument("--widths", default="padded,real", help="padded, real or both")
    parser.add_argument("--steps-per-execution", type=int, help="default: the service's")
    args = parser.parse_args(argv)
    from tuner_jobs.search import model_builder

    if args.steps_per_execution:
        model_builder.STEPS_PER_EXECUTION = args.steps_per_execution
    started, before = time.monotonic(), load()
    got = rows([int(e) for e in args.epochs.split(",")], args.widths.split(","))
    detail = f"{len(NETWORKS)} networks, {model_builder.STEPS_PER_EXECUTION} steps per execution; "
    print_report(got, started=started, load_before=before, detail=detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
