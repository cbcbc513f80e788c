"""``/ui/models``: a card per model (delay, demand, anomaly), its latest stored version as ``GET /models/{name}``
describes it (the three asked at once; a model with no stored version says why).

Each card shows the version, when it was trained, whether the server serves it, the training data (source, rows,
period, fingerprint), the headline metrics against the baselines (the row of this model in bold, the best value of
each metric in green), the feature importance as bars, and one plot of the model's own: the delay model's
reliability curve (observed late rate against predicted probability, calibrated and uncalibrated, with the
diagonal of perfect calibration), the demand model's backtest (SMAPE, WAPE and MAE of the model, the seasonal-naive
and the same-weekday-last-year forecasts) and the anomaly detector's training score quantiles with its flag
threshold. The model card's Markdown is in an expansion, rendered when opened. What a version did not record
says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import frame, require_session, when

TITLES = {"delay": "Delay risk", "demand": "Demand forecast", "anomaly": "Order anomalies"}
LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "ece": "ECE", "log_loss": "log loss",
          "accuracy": "accuracy", "smape": "SMAPE %", "wape": "WAPE %", "mae": "MAE (units)",
          "p90_coverage": "P90 coverage"}  # fmt: skip
SHORT = {"LightGBM P50 (this model)": "model", "seasonal naive (last week)": "seasonal naive",
         "same weekday last year": "weekday last year"}  # fmt: skip
COLORS = ["#1976d2", "#9e9e9e", "#ffa000", "#8d6e63"]
TOP_FEATURES = 12
SIZE_BY_COUNT = "v => Math.min(18, 4 + Math.sqrt(v[2]))"


def _number(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _missing(what: str) -> None:
    with ui.row().classes("items-center gap-1"):
        ui.icon("info", color="grey-6")
        ui.label(f"{what}: not recorded for this version").classes("text-body2 text-grey-7")


def comparison_table(comparison: dict[str, Any]) -> None:
    """The model's and the baselines' metrics: this model's row in bold, each metric's best value in green."""
    names = comparison["metrics"]
    lower = set(comparison["lower_is_better"])
    best = {}
    for name in names:
        values = [r["metrics"].get(name) for r in comparison["rows"] if r["metrics"].get(name) is not None]
        if values and name != "p90_coverage":
            best[name] = min(values) if name in lower else max(values)
    columns = [{"name": "method", "label": "method", "field": "method", "align": "left"}] + [
        {"name": n, "label": LABELS.get(n, n) + (" ↓" if n in lower else " ↑" if n in best else ""), "field": n,
         "align": "right"} for n in names]  # fmt: skip
    rows = []
    for row in comparison["rows"]:
        shown = {n: _number(row["metrics"].get(n)) for n in names}
        rows.append({"method": row["method"], "this_model": row["this_model"], **shown,
                     "best": [n for n in best if row["metrics"].get(n) == best[n]]})  # fmt: skip
    table = ui.table(columns=columns, rows=rows, row_key="method").classes("w-full").props("dense flat bordered")
    table.props(":table-row-class-fn=\"row => row.this_model ? 'text-weight-bold bg-blue-1' : ''\"")
    for name in names:
        table.add_slot(f"body-cell-{name}", f"""<q-td :props="props" :class="props.row.best.includes('{name}')
            ? 'text-positive text-weight-bold' : ''">{{{{ props.value }}}}</q-td>""")
    ui.label(f"Measured on the {comparison['evaluation']}; ↓ lower is better, ↑ higher is better.").classes(
        "text-caption text-grey-7")  # fmt: skip


class Figure:
    """Several plots side by side in one ECharts chart: each chart instance costs the browser some 50 ms to set
    up, so a card draws its plots in one. Each plot has its own grid (one x and one y axis, same index) in a
    horizontal region of the chart, given in percent of its width."""

    def __init__(self) -> None:
        self.option: dict[str, Any] = {"animation": False, "tooltip": {"trigger": "item"}, "title": [], "grid": [],
                                       "xAxis": [], "yAxis": [], "series": [], "legend": []}  # fmt: skip

    def title(self, text: str, subtext: str, left: float, width: float, top: int = 0) -> None:
        self.option["title"].append({"text": text, "subtext": subtext, "left": f"{left + width / 2}%", "top": top,
                                     "textAlign": "center", "textStyle": {"fontSize": 13}})  # fmt: skip

    def grid(self, left: float, width: float, x: dict[str, Any], y: dict[str, Any], top: int = 60,
             bottom: int = 30) -> int:  # fmt: skip
        index = len(self.option["grid"])
        self.option["grid"].append({"left": f"{left}%", "width": f"{width}%", "top": top, "bottom": bottom,
                                    "containLabel": True})  # fmt: skip
        self.option["xAxis"].append({**x, "gridIndex": index})
        self.option["yAxis"].append({**y, "gridIndex": index})
        return index

    def series(self, index: int, **series: Any) -> None:
        self.option["series"].append({**series, "xAxisIndex": index, "yAxisIndex": index})

    def draw(self, name: str) -> None:
        ui.echart(self.option).classes(f"w-full h-80 chart-{name}")


def importance_plot(figure: Figure, importance: dict[str, Any], left: float, width: float) -> None:
    """The largest feature-importance shares as horizontal bars, the largest on top."""
    top = importance["features"][:TOP_FEATURES][::-1]
    figure.title("Feature importance", importance["description"], left, width)
    index = figure.grid(left + 1, width - 6, {"type": "value", "name": "%", "axisLabel": {"fontSize": 10}},
                        {"type": "category", "data": [f["feature"] for f in top], "axisLabel": {"fontSize": 11}})
    figure.series(index, type="bar", name="share of importance", data=[round(100 * f["share"], 1) for f in top],
                  itemStyle={"color": COLORS[0]}, label={"show": True, "position": "right", "fontSize": 10,
                                                         "formatter": "{c} %"})  # fmt: skip


def calibration_plot(figure: Figure, curve: dict[str, Any], left: float, width: float) -> None:
    """Observed late rate against mean predicted probability per bin, with the diagonal of perfect calibration."""

    def points(bins: list[dict[str, Any]]) -> list[list[float]]:
        return [[round(b["mean_predicted"], 3), round(b["observed_rate"], 3), b["n"]] for b in bins]

    figure.title("Reliability curve", f"{curve['data']}, 10 probability bins; a dot's size: its orders", left, width)
    index = figure.grid(left + 3, width - 6, {"type": "value", "min": 0, "max": 1, "name": "predicted P(late)",
                                              "nameLocation": "middle", "nameGap": 25},
                        {"type": "value", "min": 0, "max": 1, "name": "observed late rate"}, bottom=40)  # fmt: skip
    tooltip = {":formatter": "p => p.seriesName + '<br>' + p.value[2] + ' orders: predicted ' + p.value[0] + "
                             "', observed ' + p.value[1]"}  # fmt: skip
    figure.series(index, type="line", name="perfect calibration", data=[[0, 0], [1, 1]], symbol="none",
                  lineStyle={"type": "dashed", "color": "#9e9e9e"}, itemStyle={"color": "#9e9e9e"},
                  tooltip={"show": False})  # fmt: skip
    figure.series(index, type="line", name="calibrated (served)", data=points(curve["calibrated"]),
                  itemStyle={"color": COLORS[0]}, tooltip=tooltip, **{":symbolSize": SIZE_BY_COUNT})
    figure.series(index, type="line", name="uncalibrated", data=points(curve["uncalibrated"]),
                  itemStyle={"color": COLORS[2]}, lineStyle={"type": "dotted"}, tooltip=tooltip,
                  **{":symbolSize": SIZE_BY_COUNT})  # fmt: skip
    figure.option["legend"].append({"data": ["perfect calibration", "calibrated (served)", "uncalibrated"],
                                    "left": f"{left + 4}%", "bottom": 0, "textStyle": {"fontSize": 11}})


def backtest_plot(figure: Figure, comparison: dict[str, Any], left: float, width: float) -> None:
    """SMAPE, WAPE and MAE of the model and both baselines, one small bar chart per metric."""
    metrics = ["smape", "wape", "mae"]
    methods = [SHORT.get(r["method"], r["method"]) for r in comparison["rows"]]
    figure.title("Backtest", "the model against the baselines; lower is better", left, width)
    step = width / len(metrics)
    for i, metric in enumerate(metrics):
        at = left + i * step
        figure.title(LABELS[metric], "", at, step, top=48)
        figure.option["title"][-1]["textStyle"] = {"fontSize": 12, "fontWeight": "normal"}
        index = figure.grid(at + 1, step - 3, {"type": "category", "data": methods,
                                               "axisLabel": {"fontSize": 9, "interval": 0, "rotate": 25}},
                            {"type": "value", "axisLabel": {"fontSize": 10}}, top=80, bottom=10)  # fmt: skip
        bars = [{"value": None if r["metrics"].get(metric) is None else round(r["metrics"][metric], 2),
                 "itemStyle": {"color": COLORS[j]}} for j, r in enumerate(comparison["rows"])]  # fmt: skip
        figure.series(index, type="bar", name=LABELS[metric], data=bars,
                      label={"show": True, "position": "top", "fontSize": 10})  # fmt: skip


def quantile_plot(figure: Figure, quantiles: dict[str, float], threshold: float | None, left: float,
                  width: float) -> None:  # fmt: skip
    """The training orders' score quantiles, with the flag threshold."""
    line = [] if threshold is None else [{"yAxis": round(threshold, 4), "name": "flag threshold"}]
    figure.title("Anomaly score of the training orders", "quantiles; flagged above the dashed line", left, width)
    index = figure.grid(left + 3, width - 12, {"type": "category", "data": list(quantiles)},
                        {"type": "value", "min": 0, "max": 1, "name": "score"})
    figure.series(index, type="bar", name="score", data=[round(v, 4) for v in quantiles.values()],
                  itemStyle={"color": COLORS[0]}, label={"show": True, "position": "top", "fontSize": 10},
                  markLine={"symbol": "none", "data": line, "label": {"formatter": "flag {c}"},
                            "lineStyle": {"color": "#c62828", "type": "dashed"}})  # fmt: skip


def plots(card: dict[str, Any]) -> None:
    """Feature importance and the model's own plot, side by side in one chart (what is not recorded says so)."""
    name = card["name"]
    own: dict[str, tuple[str, Any]] = {
        "delay": ("Calibration", card.get("calibration")),
        "demand": ("Backtest", card.get("comparison")),
        "anomaly": ("Score quantiles", card.get("score_quantiles")),
    }
    panels = [("Feature importance", card.get("feature_importance")), own[name]]
    for what, data in panels:
        if not data:
            _missing(what)
    present = [(what, data) for what, data in panels if data]
    if not present:
        return
    figure, width = Figure(), 100 / len(present)
    for i, (what, data) in enumerate(present):
        left = i * width
        if what == "Feature importance":
            importance_plot(figure, data, left, width)
        elif what == "Calibration":
            calibration_plot(figure, data, left, width)
        elif what == "Backtest":
            backtest_plot(figure, data, left, width)
        else:
            quantile_plot(figure, data, card.get("threshold"), left, width)
    figure.draw(name)


def facts(card: dict[str, Any]) -> None:
    """Version, training time, serving state and the training data."""
    data = card["training_data"]
    with ui.row().classes("items-center gap-2"):
        ui.label(TITLES[card["name"]]).classes("text-h6")
        ui.badge(card["version"], color="grey-8").classes("font-mono version")
        if card["serving_version"] == card["version"]:
            ui.badge("serving", color="positive")
        elif card["serving_version"]:
            ui.badge(f"server runs {card['serving_version']} (restart to serve this one)", color="orange")
        else:
            ui.badge("not serving", color="negative").tooltip(card.get("reason") or "")
    ui.label(str(card.get("task") or "")).classes("text-body2 text-grey-8")
    parts = [f"trained {when(card['created_at'])}", f"data: {data['source']}"]
    parts += [f"{data['rows']:,} rows" if data.get("rows") is not None else "", data.get("period") or ""]
    if card.get("threshold") is not None:
        parts.append(f"threshold {card['threshold']:.3f}")
    parts.append(f"{card['versions']} version{'s' if card['versions'] != 1 else ''} stored")
    ui.label(" · ".join(p for p in parts if p)).classes("text-body2")
    if data.get("fingerprint"):
        ui.label(f"data fingerprint sha256 {data['fingerprint'][:16]}…").classes("text-caption font-mono").tooltip(
            data["fingerprint"])  # fmt: skip


def anomaly_table(card: dict[str, Any]) -> None:
    metrics = card["metrics"]
    rows = [{"what": "contamination (share flagged by design)", "value": _number(metrics.get("contamination"))},
            {"what": "flag threshold (score)", "value": _number(metrics.get("threshold"), 4)},
            {"what": "training orders flagged", "value": f"{100 * float(metrics.get('flagged_share') or 0):.2f} %"}]
    ui.table(columns=[{"name": "what", "label": "unsupervised: no baseline", "field": "what", "align": "left"},
                      {"name": "value", "label": "value", "field": "value", "align": "right"}],
             rows=rows, row_key="what").classes("w-full").props("dense flat bordered")  # fmt: skip


def model_card(card: dict[str, Any]) -> None:
    with ui.card().classes(f"w-full gap-2 model-card model-{card['name']}"):
        facts(card)
        if card.get("comparison"):
            comparison_table(card["comparison"])
        elif card["name"] == "anomaly":
            anomaly_table(card)
        plots(card)
        if card.get("card_markdown"):
            card_text(str(card["card_markdown"]))


def card_text(markdown: str) -> None:
    """The model card in an expansion, rendered when first opened."""
    with ui.expansion("Model card", icon="description").classes("w-full").props("dense") as expansion:
        body = ui.column().classes("w-full")

    def show() -> None:
        if expansion.value and not body.default_slot.children:
            with body:
                ui.markdown(markdown).classes("w-full model-card-text")

    expansion.on_value_change(show)


def absent(name: str, reason: str) -> None:
    with ui.card().classes(f"w-full gap-1 model-card model-{name}"):
        ui.label(TITLES[name]).classes("text-h6")
        ui.label(f"No version stored: {reason}").classes("text-body2 text-negative")


async def _card(signed_in: Session, name: str) -> dict[str, Any] | Refused:
    try:
        found: dict[str, Any] = await call(signed_in, "GET", f"/models/{name}")
    except Refused as exc:
        return exc
    return found


@ui.page("/models")
async def models_page() -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Models", signed_in):
        cards = await asyncio.gather(*(_card(signed_in, name) for name in TITLES))
        for name, card in zip(TITLES, cards, strict=True):
            if isinstance(card, dict):
                model_card(card)
            elif card.status == 404:
                absent(name, card.message)
            else:
                ui.label(f"{TITLES[name]}: the server refused: {card.message}").classes("text-negative")
