"""Benchmark: scoring throughput of the delay pipeline on 100k orders.

Times, separately and best of ``--repeat`` runs: the feature pipeline (validation + encoding, from typed
columns as read from the database and from strings as read from a CSV), calibrated probabilities, the raw
``Booster.predict`` on the same matrix (the floor the pipeline is compared with), explanations
(``pred_contrib`` and their wording), and the whole ``DelayModel.score`` call.

    .venv/bin/python bench/bench_delay.py [--model MODELS_DIR] [--rows 100000] [--repeat 3] [--json OUT]

Without ``--model`` a model is trained on the demo seed's orders into a temporary directory first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import best_of

from ml.delay.artifacts import save_delay
from ml.delay.explain import top_contributions
from ml.delay.features import canonical_columns
from ml.delay.model import DelayModel
from ml.delay.train import train_delay
from ml.report import format_table, write_json
from ml.synth import generate


def orders(n_rows: int) -> pd.DataFrame:
    """Distinct synthetic orders from successive seeds until ``n_rows`` are collected."""
    frames, total, seed = [], 0, 1
    while total < n_rows:
        frame = generate(seed=seed, scale="demo")["orders"]
        frames.append(frame)
        total += len(frame)
        seed += 1
    return pd.concat(frames, ignore_index=True).head(n_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models = args.model
        if models is None:
            models = Path(tmp)
            save_delay(train_delay(generate(seed=7, scale="demo")["orders"]), models)
        model = DelayModel().load(models)
        frame = orders(args.rows)
        as_text = frame.astype(str)  # what a CSV upload looks like before validation
        booster = model.booster

        t_feat, checked = best_of(args.repeat, lambda: model.features.check(canonical_columns(frame)))
        t_feat_text, _ = best_of(args.repeat, lambda: model.features.check(canonical_columns(as_text)))
        matrix = checked.matrix
        t_prob, _ = best_of(args.repeat, lambda: model.probabilities(matrix))
        t_raw, _ = best_of(args.repeat, lambda: booster.predict(matrix, raw_score=True))
        def features_and_probabilities() -> np.ndarray:
            return model.probabilities(model.features.check(canonical_columns(frame)).matrix)

        t_both, _ = best_of(args.repeat, features_and_probabilities)
        t_contrib, contrib = best_of(1, lambda: model.contributions(matrix))
        t_words, _ = best_of(1, lambda: top_contributions(contrib, checked.clean, model.top_k))
        t_score, _ = best_of(1, lambda: model.score(frame))

    n = len(frame)
    rows: list[tuple[str, float]] = [
        ("features (typed columns)", t_feat),
        ("features (text columns, as from CSV)", t_feat_text),
        ("calibrated probabilities", t_prob),
        ("raw Booster.predict, same matrix", t_raw),
        ("features + calibrated probabilities", t_both),
        ("explanations: pred_contrib", t_contrib),
        ("explanations: top-3 in words", t_words),
        ("DelayModel.score, everything", t_score),
    ]
    print(f"delay model {model.model_version}, {n} orders, {booster.num_trees()} trees, best of {args.repeat}")
    print(format_table(["step", "seconds", "orders/s"], [[name, t, f"{n / t:,.0f}"] for name, t in rows]))
    print(f"pipeline overhead vs raw Booster.predict: {t_both / t_raw:.1f}x")
    if args.json:
        write_json(args.json, {"orders": n, "model_version": model.model_version,
                               "seconds": {name: t for name, t in rows}, "trees": booster.num_trees()})
    assert np.isfinite(t_both)


if __name__ == "__main__":
    main()
