"""The ML commands of the ``rimas`` CLI: train, predict, forecast, backtest.

:func:`add_commands` registers them on the main parser's sub-parsers; every leaf command stores a
``func(args) -> int`` that never raises for bad input: it prints the problem (naming the field, the allowed
values and the line) and returns exit code 2. A file with some bad rows is processed for its good rows,
each bad row is reported on stderr with its line number, and the exit code is 1. Progress bars go to
stderr, tables to stdout, metrics to JSON files.

    rimas train delay [--data PATH] --out DIR
    rimas predict delay --model DIR --data CSV --out CSV
    rimas train demand [--data PATH] --out DIR [--horizon H]
    rimas forecast demand --model DIR --history CSV --horizon H [--discounts CSV] --out CSV
    rimas backtest demand [--data PATH] --horizon H [--out JSON] [--detail CSV]
    rimas simulate replenishment --demand CSV --lead-time L --profit P --holding H [--policy NAME]
                                 [--history N] [--lost-share F] [--seed S]

Without ``--data`` the seeded database is read through the ``open_db`` callable given by the caller, and
``describe_db`` says which database that is: the output names it, and an empty one is an error that says
how to seed it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.data import load_orders_db, load_sales_db, read_sales_csv, read_shipping_csv
from ml.delay.artifacts import save_delay
from ml.delay.model import DelayModel
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.model import DemandModel
from ml.demand.panel import build_panel
from ml.demand.promotions import read_discounts_csv
from ml.demand.train import DemandTrainConfig, backtest_panel, check_horizon, train_demand
from ml.errors import InputError, rows_with_errors
from ml.progress import stderr_bar
from ml.replenishment import POLICIES
from ml.replenishment_game import lead_time_model, play, read_demand_csv
from ml.report import Output, write_json

log = logging.getLogger(__name__)

OpenDb = Callable[[], contextlib.AbstractContextManager[Any]]
DescribeDb = Callable[[], str]
Handler = Callable[[argparse.Namespace, Output], int]

EXIT_OK, EXIT_SOME_ROWS_BAD, EXIT_BAD_INPUT = 0, 1, 2


def add_commands(subparsers: Any, open_db: OpenDb, describe_db: DescribeDb | None = None) -> None:
    """Register ``train``, ``predict``, ``forecast`` and ``backtest`` (each with ``delay``/``demand``)."""

    def bind(handler: Handler) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            args.describe_db = describe_db or (lambda: "the database")
            return _guarded(handler, args, Output(), open_db)

        return run

    train = subparsers.add_parser("train", help="train a model and store it in a models directory")
    train_sub = train.add_subparsers(dest="model_name", required=True, metavar="{delay,demand}")
    p = train_sub.add_parser("delay", help="delay-risk classifier (P(order is late))")
    p.add_argument("--data", type=Path, help="shipping CSV (public format or ours); default: the seeded database")
    p.add_argument("--out", type=Path, required=True, help="models directory to store the new version in")
    p.add_argument("--max-rows", type=_positive_int, default=None, help="train on a stratified sample of this size")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=bind(_train_delay))
    p = train_sub.add_parser("demand", help="demand forecaster (P50/P90 per store and item)")
    p.add_argument("--data", type=Path, help="date,store,item,sales CSV; default: the seeded database")
    p.add_argument("--out", type=Path, required=True, help="models directory to store the new version in")
    p.add_argument("--horizon", type=int, default=28, help="longest horizon the model will forecast (days)")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=bind(_train_demand))

    predict = subparsers.add_parser("predict", help="score orders with a stored model")
    predict_sub = predict.add_subparsers(dest="model_name", required=True, metavar="{delay}")
    p = predict_sub.add_parser("delay", help="delay probability, severity and reasons per order")
    p.add_argument("--model", type=Path, required=True, help="models directory or one version directory")
    p.add_argument("--data", type=Path, required=True, help="CSV with ID or order_id and the ten features")
    p.add_argument("--out", type=Path, required=True, help="output CSV")
    p.add_argument("--no-explain", action="store_true", help="skip the top_features column (faster)")
    p.set_defaults(func=bind(_predict_delay))

    forecast = subparsers.add_parser("forecast", help="forecast with a stored model")
    forecast_sub = forecast.add_subparsers(dest="model_name", required=True, metavar="{demand}")
    p = forecast_sub.add_parser("demand", help="P50/P90 daily demand after the last history date")
    p.add_argument("--model", type=Path, required=True, help="models directory or one version directory")
    p.add_argument("--history", type=Path, required=True, help="date,store,item,sales CSV")
    p.add_argument("--horizon", type=int, required=True, help="days to forecast")
    p.add_argument("--discounts", type=Path, default=None,
                   help="planned promotions: date,store,item,discount rows or store,item,discount,starts_on,"
                        "ends_on windows (discount 0.15 = 15 %% off); default: no promotion planned")
    p.add_argument("--out", type=Path, required=True, help="output CSV: date,store,item,p50,p90")
    p.set_defaults(func=bind(_forecast_demand))

    backtest = subparsers.add_parser("backtest", help="hold out the last days and score a fresh model")
    backtest_sub = backtest.add_subparsers(dest="model_name", required=True, metavar="{demand}")
    p = backtest_sub.add_parser("demand", help="SMAPE/WAPE/P90 coverage vs seasonal baselines")
    p.add_argument("--data", type=Path, help="date,store,item,sales CSV; default: the seeded database")
    p.add_argument("--horizon", type=int, required=True, help="days held out (and forecast)")
    p.add_argument("--out", type=Path, default=None,
                   help="metrics JSON (default: backtest-demand-h<H>.json in the current directory)")
    p.add_argument("--detail", type=Path, default=None, help="optional CSV of every holdout forecast")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=bind(_backtest_demand))

    simulate = subparsers.add_parser("simulate", help="play an ordering policy on a demand file")
    simulate_sub = simulate.add_subparsers(dest="model_name", required=True, metavar="{replenishment}")
    p = simulate_sub.add_parser("replenishment", help="lost-sales replenishment game: a policy next to base-stock")
    p.add_argument("--demand", type=Path, required=True,
                   help="CSV, one demand value per row (a demand, sales or units column, or a single column)")
    p.add_argument("--lead-time", type=int, required=True, help="promised lead time in periods (0 = same period)")
    p.add_argument("--profit", type=float, required=True, help="profit per unit sold")
    p.add_argument("--holding", type=float, required=True, help="cost per unit left at the end of a period")
    p.add_argument("--policy", default="rimas", help=f"policy to play (one of {', '.join(POLICIES)}; default rimas)")
    p.add_argument("--history", type=int, default=5, help="first rows known before play (default 5)")
    p.add_argument("--lost-share", type=float, default=0.0,
                   help="share of orders that never arrive; > 0 also makes orders 0..4 periods late")
    p.add_argument("--seed", type=int, default=7, help="seed of the supplier's delays and losses")
    p.set_defaults(func=bind(_simulate_replenishment))


def main(
    argv: Sequence[str] | None = None, open_db: OpenDb | None = None, describe_db: DescribeDb | None = None
) -> int:
    """Stand-alone entry point (``python -m ml.cli``), also used by the tests."""
    parser = argparse.ArgumentParser(prog="rimas", description="RIMAS machine-learning commands")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub, open_db or _no_database, describe_db)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


# -- plumbing -----------------------------------------------------------------------------------------------


def _guarded(handler: Handler, args: argparse.Namespace, out: Output, open_db: OpenDb) -> int:
    args.open_db = open_db
    try:
        return handler(args, out)
    except InputError as exc:
        out.problem(f"error: {exc}")
        return EXIT_BAD_INPUT
    except OSError as exc:  # unwritable output, unreadable directory, ...
        out.problem(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return EXIT_BAD_INPUT


@contextlib.contextmanager
def _no_database() -> Any:
    raise InputError("no database configured; pass --data PATH", field="data")
    yield  # pragma: no cover


def _from_db(args: argparse.Namespace, out: Output, load: Callable[[Any], pd.DataFrame], what: str) -> pd.DataFrame:
    """Rows loaded from the seeded database, named on stdout; none at all is an error saying how to seed."""
    where = args.describe_db()
    try:
        with args.open_db() as conn:
            frame = load(conn)
    except InputError:
        raise
    except Exception as exc:  # connection refused, missing tables, ...: report, do not trace back
        raise InputError(f"cannot read {where}: {exc}", field="data") from exc
    if len(frame) == 0:
        raise InputError(f"{where} holds no {what}: it is empty. Seed it with `rimas seed` (the demo data, "
                         f"about 20 s), point RIMAS_DATA_DIR or DATABASE_URL at a seeded one, or pass --data PATH")
    out.line(f"read {len(frame):,} {what} from {where}")
    return frame


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


def _status(errors: Sequence[InputError]) -> int:
    return EXIT_SOME_ROWS_BAD if errors else EXIT_OK


# -- delay --------------------------------------------------------------------------------------------------


def _train_delay(args: argparse.Namespace, out: Output) -> int:
    errors: list[InputError] = []
    if args.data is not None:
        loaded = read_shipping_csv(args.data, require_label=True)
        errors.extend(loaded.errors)
        frame, source = loaded.frame, f"file {args.data.name}"
    else:
        frame = _from_db(args, out, lambda conn: load_orders_db(conn, labelled_only=True),
                         "orders with a known delivery outcome")
        source = "seeded database (orders)"
    cfg = DelayTrainConfig(max_rows=args.max_rows, seed=args.seed)
    trained = train_delay(frame, cfg, source=source, progress=stderr_bar)
    errors.extend(trained.row_errors)
    out.row_errors(sorted(errors, key=lambda e: e.row or 0))
    ref = save_delay(trained, args.out)
    m = trained.metrics
    ho, base = m["holdout"], m["baselines"]
    out.line(f"delay model {ref.version}: {trained.data['rows_used']} rows "
             f"(late rate {trained.data['late_rate']:.3f}), threshold {trained.threshold:.3f}")
    out.table(
        ["holdout", "ROC-AUC", "PR-AUC", "Brier", "ECE", "accuracy"],
        [
            ["LightGBM (calibrated)", ho["roc_auc"], ho["pr_auc"], ho["brier"], ho["ece"], ho["accuracy"]],
            *[[name.replace("_", " "), b["roc_auc"], b["pr_auc"], b["brier"], b["ece"], b["accuracy"]]
              for name, b in base.items()],
        ],
    )
    cv = m["cross_validation"]
    out.line(f"cross-validation ROC-AUC {cv['roc_auc_mean']:.4f} ± {cv['roc_auc_std']:.4f} ({cv['folds']} folds)")
    out.line(f"saved to {ref.path} (metrics.json, model_card.md)")
    if errors:
        out.problem(f"{rows_with_errors(errors)} row(s) skipped")
    return _status(errors)


def _predict_delay(args: argparse.Namespace, out: Output) -> int:
    model = DelayModel().load(args.model)
    loaded = read_shipping_csv(args.data, require_label=False)
    if loaded.id_column is None:
        raise InputError("missing column (accepted names: ID, order_id)", field="ID")
    scored = model.score(loaded.frame, explain=not args.no_explain)
    errors = sorted([*loaded.errors, *scored.errors], key=lambda e: e.row or 0)
    out.row_errors(errors)
    pred = scored.predictions
    result = pd.DataFrame({loaded.id_column: loaded.frame.loc[pred.index, "order_id"].to_numpy()})
    result["delay_probability"] = pred["delay_probability"].round(6).to_numpy()
    result["severity"] = pred["severity"].to_numpy()
    if "top_features" in pred.columns:
        result["top_features"] = [" | ".join(f["text"] for f in feats) for feats in pred["top_features"]]
    result["model_version"] = model.model_version
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out, index=False)
    counts = result["severity"].value_counts()
    out.line(f"scored {len(result)} order(s) with delay model {model.model_version}; "
             f"{rows_with_errors(errors)} row(s) skipped")
    out.table(["severity", "orders"], [[s, int(counts.get(s, 0))] for s in ("critical", "warning", "info", "none")])
    out.line(f"wrote {args.out}")
    return _status(errors)


# -- demand -------------------------------------------------------------------------------------------------


def _sales(args: argparse.Namespace, out: Output) -> tuple[pd.DataFrame, str, list[InputError]]:
    if args.data is not None:
        loaded = read_sales_csv(args.data)
        out.row_errors(loaded.errors)
        return loaded.frame, f"file {args.data.name}", loaded.errors
    return _from_db(args, out, load_sales_db, "daily sales rows"), "seeded database (sales_daily)", []


def _backtest_rows(bt: dict[str, Any]) -> list[list[Any]]:
    names = {"model": "LightGBM P50", "seasonal_naive": "seasonal naive", "same_weekday_last_year":
             "same weekday last year"}
    return [[label, bt[key]["smape"], bt[key]["wape"], bt[key]["mae"], bt[key].get("p90_coverage")]
            for key, label in names.items()]


def _train_demand(args: argparse.Namespace, out: Output) -> int:
    horizon = check_horizon(args.horizon)
    frame, source, errors = _sales(args, out)
    trained = train_demand(frame, DemandTrainConfig(horizon=horizon, seed=args.seed), source=source,
                           progress=stderr_bar)
    ref = save_demand(trained, args.out)
    bt = trained.metrics["backtest"]
    out.line(f"demand model {ref.version}: {trained.data['series']} series, horizon {horizon} days")
    out.line(f"backtest {bt['holdout_start']}..{bt['holdout_end']}:")
    out.table(["method", "SMAPE %", "WAPE %", "MAE", "P90 cover"], _backtest_rows(bt))
    out.line(f"saved to {ref.path} (metrics.json, model_card.md)")
    return _status(errors)


def _forecast_demand(args: argparse.Namespace, out: Output) -> int:
    model = DemandModel().load(args.model)
    loaded = read_sales_csv(args.history)
    out.row_errors(loaded.errors)
    errors = list(loaded.errors)
    discounts = None
    if args.discounts is not None:
        discounts, discount_errors = read_discounts_csv(args.discounts)
        out.row_errors(discount_errors, what=f"{args.discounts.name}: skipped")
        errors.extend(discount_errors)
    fc = model.forecast(loaded.frame, args.horizon, discounts)
    result = fc[["date", "store", "item", "p50", "p90"]].copy()
    result["date"] = result["date"].dt.strftime("%Y-%m-%d")
    for col in ("p50", "p90"):
        if bool((result[col] == result[col].round()).all()):
            result[col] = result[col].astype("int64")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out, index=False)
    out.line(f"forecast {result['store'].astype(str).str.cat(result['item'].astype(str)).nunique()} series x "
             f"{args.horizon} days ({result['date'].iloc[0]}..{result['date'].iloc[-1]}) "
             f"with demand model {model.model_version}"
             + (f" and the planned discounts in {args.discounts.name}" if discounts is not None else "")
             + f"; wrote {args.out}")
    return _status(errors)


def _backtest_demand(args: argparse.Namespace, out: Output) -> int:
    horizon = check_horizon(args.horizon)
    frame, _, errors = _sales(args, out)
    panel = build_panel(frame)
    metrics, rounds, detail = backtest_panel(panel, DemandTrainConfig(horizon=horizon, seed=args.seed),
                                             progress=stderr_bar)
    metrics["rounds"] = rounds
    out.line(f"backtest: {metrics['series']} series, last {horizon} days held out "
             f"({metrics['holdout_start']}..{metrics['holdout_end']})")
    out.table(["method", "SMAPE %", "WAPE %", "MAE", "P90 cover"], _backtest_rows(metrics))
    out.line(f"SMAPE reduction vs seasonal naive: {metrics['smape_reduction_vs_seasonal_naive_pct']:.1f} %")
    path = write_json(args.out or Path(f"backtest-demand-h{horizon}.json"), metrics)
    out.line(f"wrote {path}")
    if args.detail is not None:
        detail = detail.assign(date=detail["date"].dt.strftime("%Y-%m-%d"))
        args.detail.parent.mkdir(parents=True, exist_ok=True)
        detail.to_csv(args.detail, index=False)
        out.line(f"wrote {args.detail}")
    return _status(errors)


# -- replenishment ------------------------------------------------------------------------------------------


def _simulate_replenishment(args: argparse.Namespace, out: Output) -> int:
    if args.policy not in POLICIES:
        raise InputError(f"unknown policy {args.policy!r}", field="policy", allowed=list(POLICIES))
    if args.history < 1:
        raise InputError(f"must be >= 1, got {args.history}", field="history")
    if not args.profit > 0:
        raise InputError(f"must be > 0, got {args.profit}", field="profit")
    if not args.holding >= 0:
        raise InputError(f"must be >= 0, got {args.holding}", field="holding")
    supplier = lead_time_model(args.lead_time, args.lost_share)
    values = read_demand_csv(args.demand)
    if len(values) < args.history + 1:
        raise InputError(f"needs at least {args.history + 1} rows ({args.history} of history and one period to "
                         f"play), found {len(values)}", field="demand")
    history, played = values[: args.history], values[args.history :]
    rows = []
    for name in dict.fromkeys([args.policy, "base_stock"]):
        rng = np.random.default_rng(args.seed)
        result = play(POLICIES[name], played, history, supplier, args.profit, args.holding, rng)
        rows.append([name, round(result.reward, 2), result.normalized, result.sales, result.lost,
                     round(result.holding, 2), result.ordered, result.never_arrived])
    out.line(f"replenishment game on {args.demand.name}: {len(played)} periods after {len(history)} of history, "
             f"lead time {supplier.promised}" + (f" ({args.lost_share:.0%} of orders lost, some late)"
                                                 if args.lost_share > 0 else "")
             + f", profit {args.profit:g}, holding {args.holding:g} (critical ratio "
             f"{args.profit / (args.profit + args.holding):.3f})")
    out.table(["policy", "total reward", "normalized", "sold", "lost sales", "holding cost", "ordered",
               "never arrived"], rows)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
