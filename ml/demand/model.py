"""Serving the demand forecaster: load once, forecast a whole horizon in one pass.

:class:`DemandModel` follows the MLServer shape: ``load(path)`` then ``forecast(history, horizon)``, which
returns ``date, store, item, p50, p90, model_version`` for the ``horizon`` days after the last history date,
for every (store, item) series in the history. The P90 is never below the P50 and feeds safety stock.

Planned promotions are an optional input (``discounts``, see :mod:`ml.demand.promotions`): a day with a
planned discount gets the lift the model learned from past promotions; without them no promotion is assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.demand.artifacts import read_demand
from ml.demand.panel import build_panel, panel_to_frame
from ml.demand.promotions import check_discounts_frame, overlay_discounts
from ml.demand.train import QuantileModels
from ml.errors import InputError
from ml.registry import ModelRef, resolve


class DemandModel:
    """The demand forecaster at serving time."""

    name = "demand"

    def __init__(self) -> None:
        self._models: QuantileModels | None = None
        self.ref: ModelRef | None = None

    def load(self, path: str | Path) -> DemandModel:
        """Load a version directory, or the latest ``demand`` version under a models directory."""
        ref = resolve(path, self.name)
        self._models = read_demand(ref)
        self.ref = ref
        return self

    @property
    def loaded(self) -> bool:
        return self._models is not None

    def _require(self) -> tuple[ModelRef, QuantileModels]:
        if self.ref is None or self._models is None:
            raise RuntimeError("DemandModel.load() has not been called")
        return self.ref, self._models

    @property
    def model_version(self) -> str:
        return self._require()[0].version

    @property
    def metadata(self) -> dict[str, Any]:
        return self._require()[0].metadata

    @property
    def quantile_models(self) -> QuantileModels:
        """The P50/P90 boosters."""
        return self._require()[1]

    @property
    def horizon(self) -> int:
        """The longest horizon this model forecasts (its lags are at least this long)."""
        return self._require()[1].horizon

    def forecast(self, history: pd.DataFrame, horizon: int, discounts: pd.DataFrame | None = None) -> pd.DataFrame:
        """P50/P90 for the ``horizon`` days after the last date in ``history``.

        ``history``: ``date, store, item, sales`` (``store_id``/``sku``/``units`` accepted too), optionally
        with the day's ``discount``. ``discounts``: planned promotions for the forecast days (and, if wanted,
        past days the history has no discount for), as daily ``date, store, item, discount`` rows or as
        windows ``store, item, discount, starts_on, ends_on``; absent means no planned promotion.
        """
        _, models = self._require()
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or not 1 <= horizon <= models.horizon:
            raise InputError(f"horizon must be a whole number of days in 1..{models.horizon} for this model, "
                             f"got {horizon!r}", field="horizon")
        panel = build_panel(history)
        if discounts is not None:
            panel = overlay_discounts(panel, check_discounts_frame(discounts), int(horizon))
        fc = models.forecast(panel, int(horizon))
        offsets = np.arange(panel.n_days, panel.n_days + int(horizon))
        out = panel_to_frame(panel, offsets, {"p50": fc["p50"], "p90": fc["p90"]})
        out["model_version"] = self.model_version
        return out
