"""Plain-language explanations of delay predictions from LightGBM feature contributions.

``Booster.predict(..., pred_contrib=True)`` splits each prediction's raw score (log-odds) into one additive
contribution per feature plus a base value (TreeSHAP). The calibration is an increasing map of that score,
so a positive contribution raises the delay probability and a negative one lowers it. For each order we
report the features with the largest absolute contributions, worded for people.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml.delay.features import FEATURES

_PHRASES: dict[str, Callable[[Any], str]] = {
    "warehouse_block": lambda v: f"shipping from warehouse block {v}",
    "mode_of_shipment": lambda v: f"sending by {str(v).lower()}",
    "customer_care_calls": lambda v: f"{_num(v)} customer care call{'' if float(v) == 1 else 's'}",
    "customer_rating": lambda v: f"a customer rating of {_num(v)} out of 5",
    "cost_of_product": lambda v: f"a product cost of {float(v):,.0f}",
    "prior_purchases": lambda v: f"{_num(v)} prior purchase{'' if float(v) == 1 else 's'}",
    "product_importance": lambda v: f"{v} product importance",
    "gender": lambda v: f"customer gender {v}",
    "discount_offered": lambda v: f"a {_num(v)}% discount",
    "weight_in_gms": lambda v: f"a parcel weight of {float(v):,.0f} g",
}


def _num(v: Any) -> str:
    f = float(v)
    return f"{f:.0f}" if f.is_integer() else f"{f:g}"


_COUNTED = ("customer_care_calls", "prior_purchases")


def describe(feature: str, value: Any, contribution: float) -> str:
    """One sentence, e.g. ``"A 40% discount raises the delay risk"``."""
    phrase = _PHRASES[feature](value)
    plural = feature in _COUNTED and float(value) != 1
    verb = ("raise" if plural else "raises") if contribution > 0 else ("lower" if plural else "lowers")
    return f"{phrase[0].upper()}{phrase[1:]} {verb} the delay risk"


def top_contributions(contrib: np.ndarray, clean: pd.DataFrame, top_k: int = 3) -> list[list[dict[str, Any]]]:
    """Per row, the ``top_k`` features by absolute contribution, each as a dict with a ``text`` sentence.

    ``contrib`` is the ``pred_contrib`` matrix (n x (features + 1)); ``clean`` holds the validated feature
    values of the same rows (canonical categories, numbers).
    """
    k = max(0, min(top_k, len(FEATURES)))
    if k == 0 or len(contrib) == 0:
        return [[] for _ in range(len(contrib))]
    feats = contrib[:, : len(FEATURES)]
    order = np.argsort(-np.abs(feats), axis=1, kind="stable")[:, :k]
    columns = [clean[name].to_numpy() for name in FEATURES]
    out: list[list[dict[str, Any]]] = []
    for i in range(len(feats)):
        items = []
        for j in order[i]:
            c = float(feats[i, j])
            if c == 0.0:
                continue
            name = FEATURES[j]
            value = columns[j][i]
            value = value.item() if isinstance(value, np.generic) else value
            items.append(
                {
                    "feature": name,
                    "value": value,
                    "effect": "raises" if c > 0 else "lowers",
                    "contribution": round(c, 4),
                    "text": describe(name, value, c),
                }
            )
        out.append(items)
    return out
