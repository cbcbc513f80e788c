"""Benchmark: forecasting 500 series x 90 days with the demand model, in one pass.

Times (best of ``--repeat``) the whole ``DemandModel.forecast`` call and its parts: building the panel,
writing the planned promotions into its calendar, computing the features, and the two quantile boosters'
``predict``. The planned promotions are the demo seed's ``promotions`` table (windows; some run past the
last history day, so the forecast days carry planned discounts).

    .venv/bin/python bench/bench_forecast.py [--model MODELS_DIR] [--horizon 90] [--repeat 3] [--json OUT]

Without ``--model`` a demand model with the given horizon is trained on the demo seed's 500 series into a
temporary directory first (with at most 150 rounds per quantile, to keep the benchmark short).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import best_of

from ml.demand.artifacts import save_demand
from ml.demand.features import build_features
from ml.demand.model import DemandModel
from ml.demand.panel import build_panel
from ml.demand.promotions import check_discounts_frame, overlay_discounts
from ml.demand.train import DemandTrainConfig, train_demand
from ml.report import format_table, write_json
from ml.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    data = generate(seed=7, scale="demo")
    sales, promotions = data["sales_daily"], data["promotions"]
    with tempfile.TemporaryDirectory() as tmp:
        models = args.model
        train_seconds = None
        if models is None:
            models = Path(tmp)
            started = time.perf_counter()
            cfg = DemandTrainConfig(horizon=args.horizon, max_rounds=150)
            save_demand(train_demand(sales, cfg, source="synth demo"), models)
            train_seconds = time.perf_counter() - started
        model = DemandModel().load(models)
        horizon = min(args.horizon, model.horizon)
        qm = model.quantile_models

        t_total, fc = best_of(args.repeat, lambda: model.forecast(sales, horizon, promotions))
        t_panel, history = best_of(args.repeat, lambda: build_panel(sales))
        t_plan, panel = best_of(args.repeat,
                                lambda: overlay_discounts(history, check_discounts_frame(promotions), horizon))
        offsets = np.arange(panel.n_days, panel.n_days + horizon)
        t_feat, block = best_of(args.repeat, lambda: build_features(panel, offsets, model.horizon))
        t_pred, _ = best_of(args.repeat, lambda: [b.predict(block.matrix) for b in qm.boosters.values()])

    n_series = len(panel.keys)
    rows: list[tuple[str, float]] = [
        ("DemandModel.forecast, everything", t_total),
        ("panel from 550k history rows", t_panel),
        (f"planned promotions ({len(promotions)} windows) into the calendar", t_plan),
        ("features", t_feat),
        ("P50 + P90 Booster.predict", t_pred),
    ]
    print(f"demand model {model.model_version} (horizon {model.horizon}): {n_series} series x {horizon} days "
          f"= {len(fc)} forecasts, best of {args.repeat}"
          + (f"; trained in {train_seconds:.1f} s" if train_seconds else ""))
    print(format_table(["step", "seconds"], rows))
    if args.json:
        write_json(args.json, {"series": n_series, "horizon": horizon, "forecasts": len(fc),
                               "model_version": model.model_version, "seconds": {n: t for n, t in rows},
                               "train_seconds": train_seconds})


if __name__ == "__main__":
    main()
