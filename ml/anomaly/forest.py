"""An isolation forest as plain arrays: built from a fitted scikit-learn ``IsolationForest``, stored as JSON,
evaluated with numpy.

The registry stores no pickles, so the fitted trees are exported node by node. Each tree is re-laid out so that
an internal node's two children sit next to each other (``right = left + 1``): a step down every tree is then
``node = left[node] + (x[feature[node]] > threshold[node])``. A leaf points at itself with an infinite threshold,
so stepping ``max_depth`` times lands every row in its leaf whatever the tree's shape. Each leaf holds its path
length, ``depth + c(n)`` where ``n`` is the number of training samples that reached it and ``c`` the average
path length of an unsuccessful binary-search-tree search (Liu, Ting and Zhou, 2008), as scikit-learn computes
it. Inputs are compared in float32, as scikit-learn's trees do, so the scores are scikit-learn's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def average_path_length(n: np.ndarray | float) -> np.ndarray:
    """``c(n)``: 0 for n <= 1, 1 for n = 2, else 2 (ln(n - 1) + Euler's gamma) - 2 (n - 1) / n."""
    values = np.atleast_1d(np.asarray(n, dtype=np.float64))
    out = np.zeros_like(values)
    out[values == 2] = 1.0
    big = values > 2
    out[big] = 2.0 * (np.log(values[big] - 1.0) + np.euler_gamma) - 2.0 * (values[big] - 1.0) / values[big]
    return out


@dataclass
class Forest:
    """All trees in flat arrays; tree ``t`` starts at node ``roots[t]``."""

    left: np.ndarray  # int64: first child (its sibling is left + 1); a leaf points at itself
    feature: np.ndarray  # int64: feature index tested (0 at leaves)
    threshold: np.ndarray  # float64: go right when x > threshold (+inf at leaves)
    path: np.ndarray  # float64: path length at leaves (0 at internal nodes)
    roots: np.ndarray  # int64
    max_depth: int
    max_samples: int
    n_features: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    # -- building ----------------------------------------------------------------------------------------------

    @classmethod
    def from_sklearn(cls, model: Any, n_features: int) -> Forest:
        """Export a fitted ``sklearn.ensemble.IsolationForest`` trained on all ``n_features`` columns."""
        left: list[int] = []
        feature: list[int] = []
        threshold: list[float] = []
        path: list[float] = []
        roots: list[int] = []
        depth = 0
        for estimator, used in zip(model.estimators_, model.estimators_features_, strict=True):
            columns = np.asarray(used)
            subsampled = len(columns) != n_features
            tree = estimator.tree_
            depth = max(depth, int(tree.max_depth))
            roots.append(len(left))
            _append_tree(tree, columns if subsampled else None, left, feature, threshold, path)
        return cls(
            left=np.asarray(left, dtype=np.int64),
            feature=np.asarray(feature, dtype=np.int64),
            threshold=np.asarray(threshold, dtype=np.float64),
            path=np.asarray(path, dtype=np.float64),
            roots=np.asarray(roots, dtype=np.int64),
            max_depth=depth,
            max_samples=int(model.max_samples_),
            n_features=n_features,
        )

    # -- scoring -----------------------------------------------------------------------------------------------

    def mean_path_length(self, matrix: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Average path length of each row over the trees."""
        X = np.asarray(matrix, dtype=np.float32).astype(np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got shape {X.shape}")
        out = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), chunk):
            block = X[start : start + chunk]
            flat = block.ravel()
            rows = np.arange(len(block), dtype=np.int64)[:, None] * self.n_features
            node = np.broadcast_to(self.roots, (len(block), self.n_trees)).copy()
            for _ in range(self.max_depth):
                x = flat[rows + self.feature[node]]
                node = self.left[node] + (x > self.threshold[node])
            out[start : start + chunk] = self.path[node].mean(axis=1)
        return out

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """Anomaly score ``2 ** (-E[h(x)] / c(max_samples))`` in (0, 1]: higher is more anomalous."""
        norm = float(average_path_length(self.max_samples)[0])
        if norm == 0.0:
            return np.ones(len(matrix))
        return np.power(2.0, -self.mean_path_length(matrix) / norm)

    def split_shares(self) -> np.ndarray:
        """Each feature's share of the forest's splits (the internal nodes testing it): which features the trees
        isolate orders by."""
        counts = np.bincount(self.feature[np.isfinite(self.threshold)], minlength=self.n_features).astype(np.float64)
        total = counts.sum()
        return counts / total if total > 0 else counts

    # -- storage -----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        finite = np.isfinite(self.threshold)
        return {
            "max_depth": self.max_depth,
            "max_samples": self.max_samples,
            "n_features": self.n_features,
            "roots": self.roots.tolist(),
            "left": self.left.tolist(),
            "feature": self.feature.tolist(),
            "threshold": [float(t) if ok else None for t, ok in zip(self.threshold.tolist(), finite, strict=True)],
            "path": self.path.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Forest:
        threshold = np.asarray([np.inf if t is None else t for t in data["threshold"]], dtype=np.float64)
        forest = cls(
            left=np.asarray(data["left"], dtype=np.int64),
            feature=np.asarray(data["feature"], dtype=np.int64),
            threshold=threshold,
            path=np.asarray(data["path"], dtype=np.float64),
            roots=np.asarray(data["roots"], dtype=np.int64),
            max_depth=int(data["max_depth"]),
            max_samples=int(data["max_samples"]),
            n_features=int(data["n_features"]),
        )
        forest.check()
        return forest

    def check(self) -> None:
        """Raise ValueError unless the arrays describe a well-formed forest."""
        n = len(self.left)
        if not (len(self.feature) == len(self.threshold) == len(self.path) == n) or n == 0:
            raise ValueError("forest arrays differ in length or are empty")
        if len(self.roots) == 0 or self.roots.min() < 0 or self.roots.max() >= n:
            raise ValueError("forest roots out of range")
        if self.left.min() < 0 or (self.left + np.isfinite(self.threshold)).max() >= n:
            raise ValueError("forest children out of range")
        if self.feature.min() < 0 or self.feature.max() >= self.n_features:
            raise ValueError("forest features out of range")


def _append_tree(
    tree: Any,
    columns: np.ndarray | None,
    left: list[int],
    feature: list[int],
    threshold: list[float],
    path: list[float],
) -> None:
    """Append one scikit-learn tree, breadth first, each node's children side by side."""
    children_left, children_right = tree.children_left, tree.children_right
    samples = tree.n_node_samples
    base = len(left)
    order: list[tuple[int, int]] = [(0, 0)]  # (sklearn node, depth) in the new layout order
    slot = {0: base}
    i = 0
    while i < len(order):
        node, depth = order[i]
        i += 1
        if children_left[node] == -1:
            left.append(slot[node])
            feature.append(0)
            threshold.append(float("inf"))
            path.append(depth + float(average_path_length(samples[node])[0]))
            continue
        first = base + len(order)
        slot[children_left[node]], slot[children_right[node]] = first, first + 1
        order.append((children_left[node], depth + 1))
        order.append((children_right[node], depth + 1))
        used = int(tree.feature[node])
        left.append(first)
        feature.append(int(columns[used]) if columns is not None else used)
        threshold.append(float(tree.threshold[node]))
        path.append(0.0)


def percentile_threshold(scores: Sequence[float] | np.ndarray, contamination: float) -> float:
    """The score above which the top ``contamination`` share of ``scores`` lies (scikit-learn's offset rule)."""
    return float(np.percentile(np.asarray(scores, dtype=np.float64), 100.0 * (1.0 - contamination)))
