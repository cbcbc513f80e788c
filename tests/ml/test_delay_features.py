"""The one feature pipeline of the delay model: normalisation, validation, row errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.csvio import LINE
from ml.delay.features import FEATURES, DelayFeatures, normalise_category
from ml.errors import InputError

ROW = {
    "warehouse_block": "A", "mode_of_shipment": "Ship", "customer_care_calls": 4, "customer_rating": 3,
    "cost_of_product": 200.0, "prior_purchases": 3, "product_importance": "low", "gender": "F",
    "discount_offered": 5, "weight_in_gms": 4000,
}


@pytest.fixture
def pipeline() -> DelayFeatures:
    train = pd.DataFrame(
        [
            ROW,
            {**ROW, "warehouse_block": "B", "mode_of_shipment": "Flight", "product_importance": "high", "gender": "M"},
            {**ROW, "warehouse_block": "F", "mode_of_shipment": "Road", "product_importance": "medium"},
        ]
    )
    return DelayFeatures.fit(train)


@pytest.mark.parametrize(
    ("field", "raw", "canonical"),
    [
        ("product_importance", " High ", "high"),
        ("product_importance", "HIGH", "high"),
        ("mode_of_shipment", "flight", "Flight"),
        ("mode_of_shipment", "  SHIP", "Ship"),
        ("warehouse_block", "f", "F"),
        ("gender", "m ", "M"),
        ("gender", "", None),
        ("gender", None, None),
    ],
)
def test_categories_are_normalised_in_one_place(field: str, raw: object, canonical: str | None) -> None:
    assert normalise_category(field, raw) == canonical


def test_spelling_variants_encode_identically(pipeline: DelayFeatures) -> None:
    frame = pd.DataFrame(
        [
            {**ROW, "product_importance": "high", "mode_of_shipment": "Flight"},
            {**ROW, "product_importance": "High", "mode_of_shipment": " flight "},
            {**ROW, "product_importance": "HIGH", "mode_of_shipment": "FLIGHT"},
        ]
    )
    matrix = pipeline.transform(frame)
    assert matrix.shape == (3, len(FEATURES))
    assert (matrix == matrix[0]).all()


def test_unknown_category_names_field_and_allowed_values(pipeline: DelayFeatures) -> None:
    with pytest.raises(InputError) as info:
        pipeline.transform(pd.DataFrame([{**ROW, "warehouse_block": "Z"}]))
    err = info.value
    assert err.field == "warehouse_block"
    assert err.allowed == ["A", "B", "F"]
    assert "'Z'" in str(err)


def test_missing_column_is_rejected(pipeline: DelayFeatures) -> None:
    frame = pd.DataFrame([ROW]).drop(columns=["weight_in_gms"])
    with pytest.raises(InputError, match="missing column") as info:
        pipeline.check(frame)
    assert info.value.field == "weight_in_gms"


def test_bad_rows_are_reported_by_line_and_good_rows_kept(pipeline: DelayFeatures) -> None:
    frame = pd.DataFrame(
        [
            {**ROW},
            {**ROW, "customer_care_calls": "four"},
            {**ROW, "customer_rating": "9"},
            {**ROW, "gender": "X", "discount_offered": ""},
            {**ROW, "discount_offered": " 40 "},
        ]
    ).astype({"customer_care_calls": str, "customer_rating": str, "discount_offered": str})
    frame[LINE] = [2, 3, 4, 5, 6]
    checked = pipeline.check(frame)
    assert checked.positions.tolist() == [0, 4]
    assert checked.matrix[1, FEATURES.index("discount_offered")] == 40.0
    by_line: dict[int, list[InputError]] = {}
    for e in checked.errors:
        by_line.setdefault(e.row or 0, []).append(e)
    assert sorted(by_line) == [3, 4, 5]
    [calls] = by_line[3]
    assert calls.field == "customer_care_calls" and "'four' is not a number" in str(calls)
    [rating] = by_line[4]
    assert "out of range" in str(rating) and "<= 5" in str(rating)
    # two bad values on one line: one error each, naming its own field (and its own allowed values)
    assert [str(e) for e in by_line[5]] == [
        "line 5: gender: unknown value 'X' (allowed: F, M)",
        "line 5: discount_offered: missing value",
    ]


def test_vocabulary_round_trips_through_json_form(pipeline: DelayFeatures) -> None:
    again = DelayFeatures.from_dict(pipeline.to_dict())
    frame = pd.DataFrame([ROW, {**ROW, "warehouse_block": "F"}])
    np.testing.assert_array_equal(again.transform(frame), pipeline.transform(frame))
