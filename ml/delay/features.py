"""The one feature pipeline of the delay model, shared by training and serving.

Input rows carry the ten shipping features under our column names (``warehouse_block`` ...); the public
"E-Commerce Shipping" spellings (``Warehouse_block``, ``Cost_of_the_Product`` ...) are accepted too and
renamed by :func:`canonical_columns`. Categories are normalised in exactly one place,
:func:`normalise_category` (surrounding and repeated spaces removed, case folded to the canonical form), so
``"High"``, ``" high "`` and ``"HIGH"`` are the same value at training and at serving. The fitted pipeline
remembers the categories seen in training; any other value is rejected with an :class:`InputError` that
names the field and the allowed values. Numbers are checked for type and range.

:meth:`DelayFeatures.check` validates a whole frame at once (vectorised), returns the feature matrix of the
good rows and one error per bad value (a row with two bad fields gets two, each with its own allowed
values), so a file with a few bad rows still scores the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.csvio import LINE, resolve_columns
from ml.errors import InputError

CATEGORICAL: tuple[str, ...] = ("warehouse_block", "mode_of_shipment", "product_importance", "gender")
FEATURES: tuple[str, ...] = (
    "warehouse_block",
    "mode_of_shipment",
    "customer_care_calls",
    "customer_rating",
    "cost_of_product",
    "prior_purchases",
    "product_importance",
    "gender",
    "discount_offered",
    "weight_in_gms",
)
NUMERIC: tuple[str, ...] = tuple(f for f in FEATURES if f not in CATEGORICAL)
CATEGORICAL_INDEX: tuple[int, ...] = tuple(FEATURES.index(f) for f in CATEGORICAL)

#: Accepted column spellings per canonical name (matched case-insensitively).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "order_id": ("ID", "order_id"),
    "warehouse_block": ("Warehouse_block",),
    "mode_of_shipment": ("Mode_of_Shipment",),
    "customer_care_calls": ("Customer_care_calls",),
    "customer_rating": ("Customer_rating",),
    "cost_of_product": ("Cost_of_the_Product", "Cost_of_the_product"),
    "prior_purchases": ("Prior_purchases",),
    "product_importance": ("Product_importance",),
    "gender": ("Gender",),
    "discount_offered": ("Discount_offered",),
    "weight_in_gms": ("Weight_in_gms",),
    "is_late": ("Reached.on.Time_Y.N",),
}

_CANONICAL_CASE: dict[str, Callable[[str], str]] = {
    "warehouse_block": str.upper,
    "mode_of_shipment": str.capitalize,
    "product_importance": str.lower,
    "gender": str.upper,
}


@dataclass(frozen=True)
class NumericRange:
    """Closed range a numeric feature must lie in (``maximum`` None = unbounded)."""

    minimum: float
    maximum: float | None = None
    minimum_exclusive: bool = False

    def describe(self) -> str:
        low = f"> {self.minimum:g}" if self.minimum_exclusive else f">= {self.minimum:g}"
        return low if self.maximum is None else f"{low} and <= {self.maximum:g}"


NUMERIC_RANGES: dict[str, NumericRange] = {
    "customer_care_calls": NumericRange(0),
    "customer_rating": NumericRange(1, 5),
    "cost_of_product": NumericRange(0),
    "prior_purchases": NumericRange(0),
    "discount_offered": NumericRange(0, 100),
    "weight_in_gms": NumericRange(0, minimum_exclusive=True),
}


def normalise_category(field_name: str, value: Any) -> str | None:
    """Canonical spelling of a category value, or None when it is missing/blank.

    Spaces are trimmed and collapsed; case is folded to the field's canonical form: warehouse block and
    gender upper case (``A``, ``F``), shipment mode capitalised (``Ship``), importance lower case (``high``).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    return _CANONICAL_CASE[field_name](text)


def canonical_columns(frame: pd.DataFrame, *, require_label: bool = False) -> pd.DataFrame:
    """Rename the public / mixed-case columns to canonical names (case-insensitive); check all are there.

    Keeps the canonical feature columns, ``order_id`` and ``is_late`` when present, and the line column.
    """
    required = [*FEATURES, "is_late"] if require_label else list(FEATURES)
    mapping = resolve_columns(frame.columns, COLUMN_ALIASES, required=required)
    out = frame[list(mapping.values())].copy()
    out.columns = pd.Index(list(mapping.keys()))
    if LINE in frame.columns:
        out[LINE] = frame[LINE].to_numpy()
    return out


@dataclass
class Checked:
    """Result of validating a frame: matrix and clean values of the good rows, errors of the bad ones."""

    matrix: np.ndarray
    clean: pd.DataFrame
    positions: np.ndarray
    errors: list[InputError] = field(default_factory=list)


@dataclass
class DelayFeatures:
    """Fitted feature pipeline: the category vocabulary learned in training, and the encoding."""

    vocabulary: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> DelayFeatures:
        """Learn the categories present in a (canonical-column) training frame."""
        vocab: dict[str, list[str]] = {}
        for name in CATEGORICAL:
            if name not in frame.columns:
                raise InputError("missing column", field=name)
            values = {normalise_category(name, v) for v in pd.unique(frame[name])}
            values.discard(None)
            if not values:
                raise InputError("no values in the training data", field=name)
            vocab[name] = sorted(v for v in values if v is not None)
        return cls(vocabulary=vocab)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "categorical": list(CATEGORICAL), "vocabulary": self.vocabulary}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DelayFeatures:
        if list(data.get("features", [])) != list(FEATURES):
            raise InputError("model was trained on a different feature list", field="features",
                             allowed=list(FEATURES))
        return cls(vocabulary={k: list(v) for k, v in data["vocabulary"].items()})

    # -- validation and encoding ---------------------------------------------------------------------------

    def check(self, frame: pd.DataFrame) -> Checked:
        """Validate every row; encode the good ones. Missing columns raise at once."""
        for name in FEATURES:
            if name not in frame.columns:
                raise InputError("missing column", field=name)
        n = len(frame)
        rows = (
            frame[LINE].to_numpy(dtype=np.int64) if LINE in frame.columns else np.arange(1, n + 1, dtype=np.int64)
        )
        matrix = np.empty((n, len(FEATURES)), dtype=np.float64)
        problems: dict[str, tuple[np.ndarray, Callable[[int], str]]] = {}
        clean: dict[str, Any] = {}
        for j, name in enumerate(FEATURES):
            col = frame[name]
            if name in CATEGORICAL:
                codes, values, bad, describe = self._encode_category(name, col)
                matrix[:, j] = codes
                clean[name] = values
            else:
                nums, bad, describe = _encode_number(name, col)
                matrix[:, j] = nums
                clean[name] = nums
            if bad.any():
                problems[name] = (bad, describe)
        bad_any = np.zeros(n, dtype=bool)
        for bad, _ in problems.values():
            bad_any |= bad
        errors: list[InputError] = []  # one per bad value: each names its own field and allowed values
        for pos in np.flatnonzero(bad_any):
            for name, (bad, describe) in problems.items():
                if bad[pos]:
                    allowed = self.vocabulary.get(name) if name in CATEGORICAL else None
                    errors.append(InputError(describe(int(pos)), field=name, allowed=allowed, row=int(rows[pos])))
        good = np.flatnonzero(~bad_any)
        clean_frame = pd.DataFrame({k: np.asarray(v)[good] for k, v in clean.items()}, index=frame.index[good])
        return Checked(matrix=matrix[good], clean=clean_frame, positions=good, errors=errors)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Strict encoding: the feature matrix, or the first row's problem as an :class:`InputError`."""
        checked = self.check(frame)
        if checked.errors:
            raise checked.errors[0]
        return checked.matrix

    def _encode_category(
        self, name: str, col: pd.Series
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[int], str]]:
        vocab = self.vocabulary[name]
        index = {v: i for i, v in enumerate(vocab)}
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        canon = [normalise_category(name, u) for u in uniques]
        unique_codes = np.array([index.get(c, -1) if c is not None else -2 for c in canon], dtype=np.int64)
        unique_codes = np.append(unique_codes, -2)  # position -1 (pandas NA sentinel) means missing
        mapped = unique_codes[codes]
        canon_arr = np.array([*canon, None], dtype=object)[codes]
        bad = mapped < 0
        raw = col.to_numpy(dtype=object)

        def describe(pos: int) -> str:
            if mapped[pos] == -2:
                return "missing value"
            return f"unknown value {raw[pos]!r}"

        return mapped.astype(np.float64), canon_arr, bad, describe


def _encode_number(name: str, col: pd.Series) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    spec = NUMERIC_RANGES[name]
    if pd.api.types.is_bool_dtype(col.dtype):
        raw = col.to_numpy(dtype=object)
        nums = np.full(len(col), np.nan)
        kind = np.full(len(col), 2, dtype=np.int8)  # 2 = not a number
    elif pd.api.types.is_numeric_dtype(col.dtype):
        raw = col.to_numpy(dtype=object)
        nums = col.to_numpy(dtype=np.float64, na_value=np.nan)
        kind = np.where(np.isnan(nums), 1, 0).astype(np.int8)  # 1 = missing
    else:
        raw = col.to_numpy(dtype=object)
        text = col.astype("string").str.strip()
        blank = text.isna() | (text == "")
        nums = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        blank_arr = blank.to_numpy(dtype=bool)
        kind = np.where(blank_arr, 1, np.where(np.isnan(nums), 2, 0)).astype(np.int8)
    finite = np.isfinite(nums)
    kind = np.where((kind == 0) & ~finite, 2, kind)
    low_bad = nums <= spec.minimum if spec.minimum_exclusive else nums < spec.minimum
    high_bad = nums > spec.maximum if spec.maximum is not None else np.zeros(len(nums), dtype=bool)
    kind = np.where((kind == 0) & (low_bad | high_bad), 3, kind).astype(np.int8)
    bad = kind != 0

    def describe(pos: int) -> str:
        k = kind[pos]
        if k == 1:
            return "missing value"
        if k == 2:
            return f"{raw[pos]!r} is not a number"
        return f"{raw[pos]!r} is out of range (must be {spec.describe()})"

    return nums, bad, describe


def frame_from_records(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame from a list of dicts (API payloads), keeping the keys as written."""
    if not records:
        raise InputError("no records given", field="records")
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, Mapping):
            raise InputError(f"expected an object with the shipping fields, got {type(rec).__name__}",
                             field="records", row=i)
    return pd.DataFrame.from_records(list(records))
