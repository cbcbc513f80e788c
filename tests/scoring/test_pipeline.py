"""The scoring pipeline on a real database: one prediction and one deviation per order, external ids kept, bad
rows reported by line and field while the good ones are stored, severity from the policy with each escalator
and its reason in words, CSV and record inputs through the same path."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import BASE_ORDER, order, rows, to_csv

from ml.errors import InputError
from rag.policy import get_policy
from tools.deps import ToolDeps
from tools.scoring import ScoringUnavailable, assess, read_csv_bytes, score_csv, score_records


async def test_the_same_order_twice_is_one_prediction_and_one_deviation_updated(risk_deps: ToolDeps) -> None:
    first = await score_records([order(order_id="A-1", discount_offered=60)], source="api")
    assert first.rows_ok == 1 and len(first.deviations["warning"]) == 1
    again = await score_records([order(order_id="A-1", discount_offered=83)], source="batch")
    assert again.deviations["critical"] == first.deviations["warning"]  # the same deviation, now critical
    predictions = await rows(risk_deps.pool, "SELECT * FROM predictions WHERE order_id = 'A-1'")
    deviations = await rows(risk_deps.pool, "SELECT * FROM deviations WHERE order_id = 'A-1'")
    inputs = await rows(risk_deps.pool, "SELECT * FROM order_inputs WHERE order_id = 'A-1'")
    assert len(predictions) == len(deviations) == len(inputs) == 1
    assert predictions[0]["delay_probability"] == pytest.approx(0.83) and predictions[0]["source"] == "batch"
    assert predictions[0]["updated_at"] > predictions[0]["created_at"]
    assert deviations[0]["severity"] == "critical" and deviations[0]["status"] == "open"
    assert deviations[0]["reasons"][0] == "delay probability 0.83 above the critical threshold 0.7"
    assert inputs[0]["data"]["discount_offered"] == 83


async def test_an_order_sent_twice_in_one_input_keeps_its_last_row(risk_deps: ToolDeps) -> None:
    result = await score_records(
        [order(order_id="D-1", discount_offered=60), order(order_id="D-1", discount_offered=20)], source="api"
    )
    assert (result.rows_ok, result.superseded, result.predictions) == (2, 1, 1)
    stored = await rows(risk_deps.pool, "SELECT delay_probability FROM predictions WHERE order_id = 'D-1'")
    assert stored[0]["delay_probability"] == pytest.approx(0.20)


async def test_external_string_and_integer_ids_are_kept_and_unknown_customers_recorded(deps: ToolDeps) -> None:
    result = await score_records(
        [order(order_id="C00123", customer_id="CUST-9"), order(order_id=17, customer_id=42)], source="stream"
    )
    assert result.rows_ok == 2 and result.errors == []
    stored = await rows(
        deps.pool, "SELECT order_id, customer_ref, known_order, source, data FROM order_inputs ORDER BY order_id"
    )
    assert [(r["order_id"], r["customer_ref"], r["known_order"]) for r in stored] == [
        ("17", "42", False),
        ("C00123", "CUST-9", False),
    ]
    data = stored[1]["data"]
    assert data["order_date"] == "2026-10-20" and data["delivery_date"] is None and data["customer_id"] == "CUST-9"
    assert data["warehouse_block"] == "B" and data["carrier_name"] == "Trailway" and data["order_status"] == "shipped"
    predictions = await rows(
        deps.pool,
        "SELECT order_id, model_version, top_features, features, anomaly_score FROM predictions ORDER BY order_id",
    )
    assert [p["order_id"] for p in predictions] == ["17", "C00123"]
    assert predictions[0]["top_features"][0]["text"].endswith("the delay risk")
    assert predictions[0]["features"]["product_importance"] == "medium"
    assert 0 < predictions[0]["anomaly_score"] <= 1


async def test_bad_rows_are_reported_by_line_and_field_and_good_rows_are_stored(deps: ToolDeps) -> None:
    good = [order(order_id=f"G-{i}") for i in range(3)]
    csv = to_csv(
        [
            good[0],
            order(order_id="B-1", warehouse_block="Z"),
            good[1],
            order(order_id="B-2", order_date="31/10/2026", payment_status="owed"),
            order(order_id="bad id!"),
            good[2],
            order(order_id="B-3", customer_care_calls=-1),
        ],
        bom=True,
    )
    result = await score_csv(csv, source="batch")
    assert (result.rows_total, result.rows_ok, result.rows_failed) == (7, 3, 4)
    found = {(e.row, e.field) for e in result.errors}
    assert found == {
        (3, "warehouse_block"),
        (5, "order_date"),
        (5, "payment_status"),
        (6, "order_id"),
        (8, "customer_care_calls"),
    }
    block = next(e for e in result.errors if e.field == "warehouse_block")
    assert "unknown value 'Z'" in str(block) and block.allowed == ["A", "B", "C", "D", "F"]
    status = next(e for e in result.errors if e.field == "payment_status")
    assert status.allowed == ["paid", "pending", "refunded"]
    stored = await rows(deps.pool, "SELECT order_id FROM predictions ORDER BY order_id")
    assert [r["order_id"] for r in stored] == ["G-0", "G-1", "G-2"]


def test_a_file_that_is_not_usable_names_the_problem() -> None:
    with pytest.raises(InputError, match="not UTF-8"):
        read_csv_bytes(b"\xff\xfeorder_id")
    with pytest.raises(InputError, match="NUL"):
        read_csv_bytes(b"order_id\x00,a\n1,2\n")
    missing = to_csv([{k: v for k, v in BASE_ORDER.items() if k != "weight_in_gms"}])
    with pytest.raises(InputError) as info:
        read_csv_bytes(missing)
    assert info.value.field == "weight_in_gms" and "missing column" in str(info.value)
    with pytest.raises(InputError, match="empty"):
        read_csv_bytes(b"  \n")


async def test_public_column_spellings_and_mixed_case_values_are_accepted(deps: ToolDeps) -> None:
    public = {
        "ID": "P-1",
        "Warehouse_block": " f ",
        "Mode_of_Shipment": "FLIGHT",
        "Customer_care_calls": "4",
        "Customer_rating": "2",
        "Cost_of_the_Product": "220",
        "Prior_purchases": "3",
        "Product_importance": "High",
        "Gender": "m",
        "Discount_offered": "7",
        "Weight_in_gms": "1800",
    }
    result = await score_csv(to_csv([public]))
    assert result.rows_ok == 1, result.errors
    stored = await rows(deps.pool, "SELECT data FROM order_inputs WHERE order_id = 'P-1'")
    assert stored[0]["data"]["warehouse_block"] == "F" and stored[0]["data"]["mode_of_shipment"] == "Flight"


# -- severity, escalators and reasons -------------------------------------------------------------------------------


def _assess(**columns: Any) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "delay_probability": [0.1] * n,
            "order_value": [np.nan] * n,
            "quantity": [np.nan] * n,
            "cost_of_product": [100.0] * n,
            "discount_offered": [0.0] * n,
            "customer_care_calls": [2.0] * n,
            "is_anomaly": [False] * n,
            "anomaly_score": [0.4] * n,
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_severity_comes_from_the_policy_thresholds_which_must_be_exceeded() -> None:
    out = assess(_assess(delay_probability=[0.83, 0.7, 0.55, 0.5, 0.31, 0.3]), {}, get_policy())
    assert out["severity"].tolist() == ["critical", "warning", "warning", "info", "info", "none"]
    assert json.loads(out["reasons"][0]) == ["delay probability 0.83 above the critical threshold 0.7"]
    assert json.loads(out["reasons"][2]) == ["delay probability 0.55 above the warning threshold 0.5"]
    assert json.loads(out["reasons"][5]) == ["delay probability 0.30 is not above the info threshold 0.3"]


def test_an_order_value_over_500_raises_info_and_warning_to_critical() -> None:
    frame = _assess(
        delay_probability=[0.4, 0.6, 0.9, 0.2, 0.6],
        order_value=[612.0, np.nan, 700.0, 900.0, np.nan],
        cost_of_product=[100.0, 250.0, 100.0, 100.0, 100.0],
        quantity=[np.nan, 3.0, np.nan, 1.0, 1.0],
        discount_offered=[0.0, 20.0, 0.0, 0.0, 0.0],
    )
    out = assess(frame, {"o4": 512.5}, get_policy())
    assert out["severity"].tolist() == ["critical", "critical", "critical", "none", "critical"]
    assert out["order_value"].tolist() == [612.0, 600.0, 700.0, 900.0, 512.5]  # given, estimated, -, -, seeded
    assert json.loads(out["reasons"][0]) == [
        "delay probability 0.40 above the info threshold 0.3",
        "order value 612.00 above 500: raised to critical",
    ]
    assert json.loads(out["reasons"][2])[1] == "order value 700.00 above 500"  # already critical: said, not raised


def test_care_calls_over_the_policy_and_anomalies_add_reasons() -> None:
    frame = _assess(
        delay_probability=[0.6, 0.6, 0.1],
        customer_care_calls=[5.0, 4.0, 9.0],
        is_anomaly=[True, False, True],
        anomaly_score=[0.71, 0.5, 0.8],
    )
    out = assess(frame, {}, get_policy())
    assert json.loads(out["reasons"][0]) == [
        "delay probability 0.60 above the warning threshold 0.5",
        "5 customer care calls, above 4 (routes to the customer care lead)",
        "anomalous order: anomaly score 0.71",
    ]
    assert len(json.loads(out["reasons"][1])) == 1
    assert out["severity"][2] == "none"  # reasons explain deviations; they do not make one


async def test_more_than_five_critical_deviations_in_a_block_within_24h_are_a_warehouse_cluster(
    risk_deps: ToolDeps,
) -> None:
    five = [order(order_id=f"W-{i}", warehouse_block="C", discount_offered=90) for i in range(5)]
    result = await score_records([*five, order(order_id="W-A", warehouse_block="A", discount_offered=90)], source="api")
    assert result.clusters == []
    sixth = await score_records(
        [
            order(order_id="W-5", warehouse_block="C", discount_offered=90),
            order(order_id="W-W", warehouse_block="C", discount_offered=60),
        ],
        source="api",
    )
    assert sixth.clusters == ["C"]
    marked = await rows(
        risk_deps.pool,
        "SELECT order_id, reasons FROM deviations WHERE reasons::text LIKE '%%warehouse cluster%%' ORDER BY order_id",
    )
    assert [r["order_id"] for r in marked] == [f"W-{i}" for i in range(6)]  # critical ones in block C only
    assert marked[0]["reasons"][-1] == (
        "warehouse cluster: 6 critical deviations in warehouse block C within 24 h, above 5 (routes to management)"
    )
    again = await score_records([order(order_id="W-0", warehouse_block="C", discount_offered=91)], source="api")
    assert again.clusters == ["C"]
    reasons = (await rows(risk_deps.pool, "SELECT reasons FROM deviations WHERE order_id = 'W-0'"))[0]["reasons"]
    assert sum("warehouse cluster" in r for r in reasons) == 1  # said once, however often it is re-scored


async def test_a_deviation_whose_order_falls_below_info_is_dismissed_then_reopened(risk_deps: ToolDeps) -> None:
    await score_records([order(order_id="R-1", discount_offered=60)], source="api")
    down = await score_records([order(order_id="R-1", discount_offered=10)], source="api")
    assert down.dismissed == 1
    stored = (await rows(risk_deps.pool, "SELECT status, reasons, severity FROM deviations"))[0]
    assert stored["status"] == "dismissed" and "is not above the info threshold 0.3" in stored["reasons"][0]
    up = await score_records([order(order_id="R-1", discount_offered=75)], source="api")
    assert len(up.deviations["critical"]) == 1 and up.auto_start == up.deviations["critical"]
    assert (await rows(risk_deps.pool, "SELECT status FROM deviations"))[0]["status"] == "open"


async def test_only_deviations_at_the_auto_start_level_without_a_thread_are_to_start(risk_deps: ToolDeps) -> None:
    result = await score_records(
        [
            order(order_id="S-1", discount_offered=80),
            order(order_id="S-2", discount_offered=60),
            order(order_id="S-3", discount_offered=80),
        ],
        source="api",
    )
    assert len(result.auto_start) == 2
    async with risk_deps.pool.connection() as conn:
        await conn.execute("UPDATE deviations SET thread_id = 't', status = 'in_progress' WHERE order_id = 'S-1'")
    again = await score_records(
        [order(order_id="S-1", discount_offered=85), order(order_id="S-3", discount_offered=85)], source="api"
    )
    s3 = (await rows(risk_deps.pool, "SELECT deviation_id::text FROM deviations WHERE order_id = 'S-3'"))[0]
    assert again.auto_start == [s3["deviation_id"]]
    kept = (await rows(risk_deps.pool, "SELECT status FROM deviations WHERE order_id = 'S-1'"))[0]
    assert kept["status"] == "in_progress"  # re-scoring never resets a deviation the workflow works on


async def test_without_a_delay_model_scoring_says_so(deps: ToolDeps) -> None:
    deps.models = {}
    with pytest.raises(ScoringUnavailable, match="delay model is not loaded"):
        await score_records([order()], source="api")
