"""The ML commands through ``ml.cli.main``: files in, files out, clear errors and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.cli import main


def _write_sales(frame: pd.DataFrame, path: Path) -> Path:
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def test_train_then_predict_delay_from_public_csv(
    public_orders: pd.DataFrame, write_public_csv: Callable[..., Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_csv = write_public_csv(public_orders.head(1500), "train.csv")
    models = tmp_path / "models"
    assert main(["train", "delay", "--data", str(train_csv), "--out", str(models)]) == 0
    out = capsys.readouterr().out
    assert "ROC-AUC" in out and "logistic regression" in out
    [version] = list((models / "delay").iterdir())
    assert json.loads((version / "metrics.json").read_text())["holdout"]["roc_auc"] > 0.5

    rows = public_orders.head(5).drop(columns=["Reached.on.Time_Y.N"]).astype(str)
    bad = rows.iloc[[0, 1]].copy()
    bad.iloc[0, bad.columns.get_loc("Warehouse_block")] = "Z"
    bad.iloc[1, bad.columns.get_loc("Weight_in_gms")] = "heavy"
    score_csv = write_public_csv(pd.concat([rows.iloc[:2], bad, rows.iloc[2:]]), "score.csv")
    result = tmp_path / "scored.csv"
    code = main(["predict", "delay", "--model", str(models), "--data", str(score_csv), "--out", str(result)])
    captured = capsys.readouterr()
    assert code == 1  # some rows were bad; the good ones are scored
    assert "line 4: warehouse_block: unknown value 'Z' (allowed: A, B, C, D, F)" in captured.err
    assert "line 5: weight_in_gms: 'heavy' is not a number" in captured.err
    assert "Traceback" not in captured.err
    scored = pd.read_csv(result)
    assert scored.columns[:3].tolist() == ["ID", "delay_probability", "severity"]
    assert scored["ID"].tolist() == rows["ID"].astype(int).tolist()
    assert scored["severity"].isin(["none", "info", "warning", "critical"]).all()
    assert scored["model_version"].nunique() == 1


def test_predict_delay_reports_each_bad_value_with_its_own_allowed_values(
    public_orders: pd.DataFrame, delay_models_dir: Path, write_public_csv: Callable[..., Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = public_orders.head(4).drop(columns=["Reached.on.Time_Y.N"]).astype(str)
    rows.iloc[0, rows.columns.get_loc("Warehouse_block")] = "Z"
    rows.iloc[1, rows.columns.get_loc("Mode_of_Shipment")] = "Rocket"
    rows.iloc[2, rows.columns.get_loc("Warehouse_block")] = "Q"
    rows.iloc[2, rows.columns.get_loc("Mode_of_Shipment")] = "Truck"
    data = write_public_csv(rows, "score.csv")
    code = main(["predict", "delay", "--model", str(delay_models_dir), "--data", str(data),
                 "--out", str(tmp_path / "scored.csv")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.splitlines() == [
        "skipped line 2: warehouse_block: unknown value 'Z' (allowed: A, B, C, D, F)",
        "skipped line 3: mode_of_shipment: unknown value 'Rocket' (allowed: Flight, Road, Ship)",
        "skipped line 4: warehouse_block: unknown value 'Q' (allowed: A, B, C, D, F)",
        "skipped line 4: mode_of_shipment: unknown value 'Truck' (allowed: Flight, Road, Ship)",
    ]
    assert "scored 1 order(s)" in captured.out and "3 row(s) skipped" in captured.out


def test_sales_rows_with_two_bad_values_name_each_column_once(
    sales: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = sales[(sales["store"] == sales["store"].iloc[0]) & (sales["item"] == sales["item"].iloc[0])]
    rows = one.assign(date=one["date"].dt.strftime("%Y-%m-%d")).astype(str)
    rows.iloc[5, rows.columns.get_loc("date")] = "yesterday"
    rows.iloc[5, rows.columns.get_loc("sales")] = "-3"
    rows.to_csv(tmp_path / "sales.csv", index=False)
    code = main(["backtest", "demand", "--data", str(tmp_path / "sales.csv"), "--horizon", "7",
                 "--out", str(tmp_path / "bt.json")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "skipped line 7: date: 'yesterday' is not a date (expected YYYY-MM-DD)" in err
    assert "skipped line 7: sales: '-3' is not a number >= 0" in err
    assert "date: date:" not in err


def test_commands_outside_a_checkout_say_where_they_looked_and_how_to_seed(
    settings_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main as rimas

    settings_factory()  # no RIMAS_* settings, working directory = an empty folder
    for argv in (["train", "demand", "--out", "models"], ["train", "delay", "--out", "models"],
                 ["backtest", "demand", "--horizon", "7"]):
        assert rimas(argv) == 2
        err = capsys.readouterr().err
        assert f"no database: {(tmp_path / '.rimas' / 'pg').resolve()} does not exist" in err
        assert "`rimas seed`" in err and "--data PATH" in err and "Traceback" not in err
    assert not (tmp_path / ".rimas").exists()  # nothing was created on the way


def test_an_empty_database_is_named_with_how_to_seed_it(
    new_database: Callable[[str], str], settings_factory: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from server.cli import main as rimas

    settings_factory()
    url = new_database("empty")
    monkeypatch.setenv("DATABASE_URL", url)
    assert rimas(["train", "demand", "--out", "models"]) == 2
    err = capsys.readouterr().err
    dbname = url.rsplit("dbname=", 1)[-1].split()[0]
    assert f"/{dbname} (DATABASE_URL) holds no daily sales rows: it is empty. Seed it with `rimas seed`" in err
    assert "password" not in err
    assert rimas(["train", "delay", "--out", "models"]) == 2
    assert "holds no orders with a known delivery outcome" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("ID,Warehouse_block\n1,A\n", "missing column"),
    ],
)
def test_bad_files_give_a_message_and_exit_2(
    content: str, message: str, delay_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content)
    code = main(["predict", "delay", "--model", str(delay_models_dir), "--data", str(path),
                 "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_model_and_missing_database_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.csv"
    path.write_text("ID\n1\n")
    assert main(["predict", "delay", "--model", str(tmp_path), "--data", str(path), "--out", "o.csv"]) == 2
    assert "no 'delay' model" in capsys.readouterr().err
    assert main(["train", "delay", "--out", str(tmp_path)]) == 2
    assert "pass --data" in capsys.readouterr().err


def test_train_delay_from_the_database(open_db: Callable[[], Any], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "delay", "--out", str(tmp_path)], open_db=open_db, describe_db=lambda: "the test db")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "orders with a known delivery outcome from the test db" in out
    assert "seeded database" in next((tmp_path / "delay").iterdir()).joinpath("model_card.md").read_text()


def test_demand_train_forecast_and_backtest(
    sales: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_sales(sales, tmp_path / "train.csv")
    models = tmp_path / "models"
    assert main(["train", "demand", "--data", str(data), "--out", str(models), "--horizon", "7"]) == 0
    assert "seasonal naive" in capsys.readouterr().out

    out = tmp_path / "fc.csv"
    assert main(["forecast", "demand", "--model", str(models), "--history", str(data), "--horizon", "7",
                 "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert fc.columns.tolist() == ["date", "store", "item", "p50", "p90"]
    assert len(fc) == sales.groupby(["store", "item"]).ngroups * 7
    assert fc["date"].min() == (sales["date"].max() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")

    assert main(["forecast", "demand", "--model", str(models), "--history", str(data), "--horizon", "30",
                 "--out", str(out)]) == 2
    assert "horizon" in capsys.readouterr().err

    report = tmp_path / "bt.json"
    assert main(["backtest", "demand", "--data", str(data), "--horizon", "7", "--out", str(report)]) == 0
    table = capsys.readouterr().out
    metrics = json.loads(report.read_text())
    assert f"{metrics['model']['smape']:.2f}" in table
    assert {"smape", "wape", "p90_coverage"} <= set(metrics["model"])
    assert {"smape", "wape"} <= set(metrics["seasonal_naive"]) and "smape" in metrics["same_weekday_last_year"]


def test_forecast_demand_with_planned_promotions(
    demand_models_dir: Path, sales: pd.DataFrame, small: dict[str, pd.DataFrame], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = _write_sales(sales, tmp_path / "history.csv")  # public layout: no discount column
    plain_csv, promo_csv = tmp_path / "plain.csv", tmp_path / "promo.csv"
    assert main(["forecast", "demand", "--model", str(demand_models_dir), "--history", str(history),
                 "--horizon", "14", "--out", str(plain_csv)]) == 0
    capsys.readouterr()

    # The promotions table (past windows, so the lift can be estimated) plus one planned window per series,
    # and one bad row.
    first = sales["date"].max() + pd.Timedelta(days=1)
    past = small["promotions"][["store_id", "sku", "discount", "starts_on", "ends_on"]]
    planned = past.drop_duplicates(["store_id", "sku"]).assign(
        discount=0.2, starts_on=first + pd.Timedelta(days=2), ends_on=first + pd.Timedelta(days=6))
    plan = pd.concat([past, planned]).astype(str)
    bad = plan.iloc[[0]].assign(discount="lots")
    pd.concat([plan.iloc[:3], bad, plan.iloc[3:]]).to_csv(tmp_path / "plan.csv", index=False)
    code = main(["forecast", "demand", "--model", str(demand_models_dir), "--history", str(history),
                 "--horizon", "14", "--discounts", str(tmp_path / "plan.csv"), "--out", str(promo_csv)])
    captured = capsys.readouterr()
    assert code == 1
    assert "plan.csv: skipped line 5: discount: 'lots' is not a discount" in captured.err
    assert "planned discounts in plan.csv" in captured.out

    plain, promo = pd.read_csv(plain_csv), pd.read_csv(promo_csv)
    assert promo.columns.tolist() == plain.columns.tolist() == ["date", "store", "item", "p50", "p90"]
    on = pd.to_datetime(promo["date"]).between(first + pd.Timedelta(days=2), first + pd.Timedelta(days=6))
    assert promo.loc[on, "p50"].sum() > 1.2 * plain.loc[on, "p50"].sum()
    assert (promo["p90"] >= promo["p50"]).all()
