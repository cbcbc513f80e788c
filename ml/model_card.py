"""Model cards: a Markdown summary written next to every stored model version.

A card says what the model predicts, from which data (with its fingerprint), how it was trained, how well
it does against simple baselines on data it did not see, and where it should not be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _libraries(meta: Mapping[str, Any]) -> str:
    libs = meta.get("libraries", {})
    return ", ".join(f"{k} {v}" for k, v in sorted(libs.items()))


def delay_card(meta: Mapping[str, Any]) -> str:
    """Model card of a delay-risk classifier version, from its metadata."""
    m = meta["metrics"]
    ho, unc, cv, base = m["holdout"], m["holdout_uncalibrated"], m["cross_validation"], m["baselines"]
    data = meta["training_data"]
    cols = ("roc_auc", "pr_auc", "brier", "ece", "log_loss", "accuracy")
    rows = [
        ["LightGBM, calibrated (this model)", *(ho.get(c) for c in cols)],
        ["LightGBM, uncalibrated", *(unc.get(c) for c in cols)],
        ["logistic regression (one-hot)", *(base["logistic_regression"].get(c) for c in cols)],
        ["class prior", *(base["prior"].get(c) for c in cols)],
    ]
    vocab = "; ".join(f"{k}: {', '.join(v)}" for k, v in meta["vocabulary"].items())
    return f"""# Model card: delay-risk classifier `{meta['version']}`

**Predicts** `delay_probability` = P(order is delivered late) from ten shipping features:
{', '.join(f'`{f}`' for f in meta['features'])}. The label is `is_late` (in the public "E-Commerce
Shipping" data, `Reached.on.Time_Y.N = 1` means LATE). Categories accepted: {vocab}; other values are
rejected with an error naming the field.

## Training data
- source: {data['source']}; {data['rows_used']} rows used ({data['rows_train']} train, {data['rows_holdout']}
  holdout), late rate {_fmt(data['late_rate'], 3)}; {data['rows_unlabelled']} rows without a known label and
  {data['rows_rejected']} invalid rows were left out{'; subsampled' if data.get('subsampled') else ''}.
- fingerprint: sha256 `{data['fingerprint']['sha256']}` over {data['fingerprint']['rows']} rows.

## Procedure
Stratified {100 - round(100 * meta['params']['holdout'])}/{round(100 * meta['params']['holdout'])} split;
{cv['folds']}-fold stratified cross-validation on the train part with early stopping on each validation fold
(best rounds {cv['best_rounds']}); final LightGBM booster with {m['rounds']} rounds on the whole train part.
Probabilities are calibrated by Platt scaling of the raw score fitted on out-of-fold scores
(slope {_fmt(meta['calibration']['slope'])}, intercept {_fmt(meta['calibration']['intercept'])}).

## Holdout metrics (n = {ho['n']}, data never used for fitting or early stopping)
{_table(['model', 'ROC-AUC', 'PR-AUC', 'Brier', 'ECE (10 bins)', 'log loss', 'accuracy'], rows)}

Cross-validation ROC-AUC: {_fmt(cv['roc_auc_mean'])} ± {_fmt(cv['roc_auc_std'])} over {cv['folds']} folds.

## Decision threshold
`{_fmt(meta['threshold'])}`, chosen to {meta['threshold_rule']}. At this threshold on the holdout: precision
{_fmt(ho['precision'], 3)}, recall {_fmt(ho['recall'], 3)}, accuracy {_fmt(ho['accuracy'], 3)}, balanced accuracy
{_fmt(ho['balanced_accuracy'], 3)}. (Always predicting "late" has accuracy {_fmt(ho['positive_rate'], 3)} but
finds no on-time order; the threshold balances both kinds of error.) Severity bands for deviations are
policy, not part of the model: > 0.7 critical, > 0.5 warning, > 0.3 info.

## Limitations
- Trained on {data['source']}; the ten features explain lateness only partly. On the public shipping data
  published models reach ROC-AUC about 0.73; a result far above 0.76 there would indicate label leakage.
- Discounts above 10 % are almost always late in the data; the model learns that association, not a cause.
- `gender` is a feature because the public data has it; it should carry no weight, and explanations show
  when it does.
- Probabilities are calibrated on the training distribution; recalibrate when the late rate shifts.

Libraries: {_libraries(meta)}. Created {meta['created_at']}.
"""


def demand_card(meta: Mapping[str, Any]) -> str:
    """Model card of a demand forecaster version, from its metadata."""
    bt = meta["metrics"]["backtest"]
    data = meta["training_data"]
    params = meta["params"]
    rows = [
        ["LightGBM P50 (this model)", bt["model"]["smape"], bt["model"]["wape"], bt["model"]["mae"],
         bt["model"]["p90_coverage"]],
        ["seasonal naive (last week)", bt["seasonal_naive"]["smape"], bt["seasonal_naive"]["wape"],
         bt["seasonal_naive"]["mae"], None],
        ["same weekday last year", bt["same_weekday_last_year"]["smape"], bt["same_weekday_last_year"]["wape"],
         bt["same_weekday_last_year"]["mae"], None],
    ]
    reduction = bt.get("smape_reduction_vs_seasonal_naive_pct")
    return f"""# Model card: demand forecaster `{meta['version']}`

**Predicts** daily unit sales per (store, item) as two quantiles, P50 (median, the point forecast) and P90
(the upper bound used for safety stock), for up to {meta['horizon']} days after the last history day, in one
pass (every lag and rolling window ends at least {meta['horizon']} days before the day forecast).
{'Sales are whole units, so both quantiles are rounded to whole units.' if meta.get('integer_sales') else ''}

## Training data
- source: {data['source']}; {data['rows']} rows, {data['series']} series ({data['stores']} stores x up to
  {data['items']} items), {data['first_date']} to {data['last_date']}.
- fingerprint: sha256 `{data['fingerprint']['sha256']}` over {data['fingerprint']['rows']} rows.

## Procedure
One global LightGBM model per quantile (pinball loss) over all series; features: calendar (weekday, day of
month, month, day of year, week), same-weekday lags and their 4- and 8-week means, 7/28/364-day rolling
means and the 28-day standard deviation, last year's value and week, a last-year seasonal estimate, the
zero-sales share and the log level; volume features and the target are divided by the series' 91-day level.
The last {params['train_days']} days are the training targets (at most {params['max_rows']} rows, seeded
sample). Backtest: the last {bt['horizon']} days ({bt['holdout_start']} to {bt['holdout_end']}) held out,
early stopping on the {bt['horizon']} days before them; the stored model is then refitted on all days with
{', '.join(f"{k.upper()} {v}" for k, v in meta['metrics']['rounds'].items())} boosting rounds.

## Backtest ({bt['series']} series x {bt['horizon']} days, never used for fitting)
{_table(['method', 'SMAPE %', 'WAPE %', 'MAE', 'P90 coverage'], rows)}

SMAPE is Kaggle's: 200/n * sum |F - A| / (|F| + |A|), a term being 0 when both are 0. SMAPE reduction against
the seasonal-naive baseline: {_fmt(reduction, 1)} %. Ideal P90 coverage is 0.90.

## Limitations
- Planned promotions are an input (the day's discount, position in the promotion, expected lift);
  without a plan no promotion is assumed.
- Days a series has no row for count as zero sales; a new series needs some history before its forecast
  is more than a calendar profile.
- Forecasts beyond {meta['horizon']} days need a model trained with a longer horizon (`--horizon`).

Libraries: {_libraries(meta)}. Created {meta['created_at']}.
"""
