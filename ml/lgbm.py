"""LightGBM settings shared by the delay classifier and the demand forecaster."""

from __future__ import annotations

from typing import Any, Protocol


class TreeConfig(Protocol):
    learning_rate: float
    num_leaves: int
    min_data_in_leaf: int
    feature_fraction: float
    bagging_fraction: float
    lambda_l2: float
    seed: int
    num_threads: int


def tree_params(cfg: TreeConfig, **objective: Any) -> dict[str, Any]:
    """Deterministic, quiet booster parameters from ``cfg``, plus the objective-specific ``objective`` keys."""
    return {
        **objective,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": cfg.lambda_l2,
        "seed": cfg.seed,
        "deterministic": True,
        "num_threads": cfg.num_threads,
        "verbose": -1,
    }


def gain_importance(booster: Any, names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Each feature's share of the booster's total split gain (sums to 1; all 0 for a booster without splits)."""
    gains = [float(g) for g in booster.feature_importance(importance_type="gain")]
    total = sum(gains)
    return {str(name): (gain / total if total > 0 else 0.0) for name, gain in zip(names, gains, strict=True)}
