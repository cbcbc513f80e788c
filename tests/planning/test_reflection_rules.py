"""The reflection's rules on hand-made plans: a forecast against its recent trend, an order far above its target and
a promotion on an assumed elasticity are flagged; the risks name the lines behind them; a forecast's confidence
falls as its P50-P90 band widens."""

from __future__ import annotations

from typing import Any

from graphs.planning.consolidate import _bias_checks, _risks
from graphs.planning.specialists import _confidence


def line(item_id: int, **over: Any) -> dict[str, Any]:
    return {"item_id": item_id, "recommended_order_qty": 10, "order_up_to": 20.0, "promotion": None, "cut": None,
            "stockout_risk": 0.02, "forecast_source": "model", **over}  # fmt: skip


def state(forecasts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"forecasts": forecasts}


def forecast(daily: float, days: int = 10, **over: Any) -> dict[str, Any]:
    return {"p50": [daily] * days, "p90": [daily * 1.2] * days, "horizon_p50": daily * days,
            "horizon_p90": daily * days * 1.2, "trend_pct": None, "recent_daily": daily, **over}  # fmt: skip


def test_bias_checks_flag_what_they_name() -> None:
    plans = state({"1": forecast(5.0, trend_pct=40.0, recent_daily=10.0), "2": forecast(10.0)})
    lines = [line(1), line(2, recommended_order_qty=50, order_up_to=20.0,
                           promotion={"elasticity": {"source": "prior"}})]  # fmt: skip
    checks = {c["check"].split(":")[0]: c for c in _bias_checks(plans, lines)}
    assert checks["recency"]["result"] == "flag" and "[1]" in checks["recency"]["detail"]
    assert checks["anchoring"]["result"] == "flag" and "[2]" in checks["anchoring"]["detail"]
    assert checks["optimism"]["result"] == "flag" and "[2]" in checks["optimism"]["detail"]
    calm = state({"1": forecast(10.0, trend_pct=40.0, recent_daily=10.0), "2": forecast(10.0)})
    assert {c["result"] for c in _bias_checks(calm, [line(1), line(2)])} == {"pass"}


def test_risks_name_the_lines_behind_them() -> None:
    plans = state({"1": forecast(5.0), "2": forecast(5.0, horizon_p90=90.0)})
    lines = [line(1, stockout_risk=0.4, forecast_source="fallback"), line(2, cut="cut 3 of 10 units")]
    risks = {r["risk"]: r for r in _risks(plans, lines, 0.95)}
    assert any("fallback forecast: [1]" in r for r in risks)
    assert any(r.startswith("stock-out risk") and "[1]" in r for r in risks)
    assert any(r.startswith("the budget cut") and "[2]" in r for r in risks)
    assert any(r.startswith("uncertain demand") and "[2]" in r for r in risks)
    assert all(r["severity"] in ("low", "medium", "high") and r["mitigation"] for r in risks.values())


def test_confidence_falls_as_the_band_widens() -> None:
    narrow = _confidence("model", [10.0] * 14, [11.0] * 14, 400, 56)
    wide = _confidence("model", [10.0] * 14, [20.0] * 14, 400, 56)
    assert 0.35 <= wide < narrow <= 0.95
    assert _confidence("fallback", [10.0], [15.0], 20, 56) == 0.3
    assert _confidence("fallback", [10.0], [15.0], 400, 56) == 0.45
