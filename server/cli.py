"""The ``rimas`` command: serve the API, migrate, seed, the ML / knowledge commands and the evaluations.

Every command that needs the database starts the embedded PostgreSQL when ``DATABASE_URL`` is unset (or
reuses the one a running server started) and stops it again if it started it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ml.cli import add_commands as add_ml_commands
from rag.cli import add_commands as add_rag_commands
from server.chat_cli import add_commands as add_chat_commands
from server.db import connect, running_database
from server.logs import configure_logging
from server.settings import Settings, get_settings, is_loopback

if TYPE_CHECKING:
    from graphs.deviation.evaluation import EvaluationReport, Scenario

log = logging.getLogger("rimas")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def open_db() -> Iterator[psycopg.Connection[Any]]:
    """A connection to the configured database, migrated, with the embedded cluster up meanwhile."""
    from server.migrate import migrate

    with running_database(get_settings()) as url, connect(url) as conn:
        migrate(conn)
        yield conn


def describe_database(settings: Settings) -> str:
    """Which database commands use, for messages: the embedded cluster's folder, or DATABASE_URL sans password."""
    if settings.database_url is None:
        return f"the embedded database in {settings.pg_dir.resolve()} (RIMAS_DATA_DIR)"
    parts = conninfo_to_dict(settings.database_url)
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"the database {user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname', '')} (DATABASE_URL)"


@contextlib.contextmanager
def open_seeded_db() -> Iterator[psycopg.Connection[Any]]:
    """:func:`open_db` for commands that read the demo data: a missing embedded cluster is not created."""
    from ml.errors import InputError

    settings = get_settings()
    if settings.database_url is None and not settings.pg_dir.exists():
        raise InputError(
            f"no database: {settings.pg_dir.resolve()} does not exist (RIMAS_DATA_DIR={settings.data_dir}). Run "
            f"`rimas seed` to create it with the demo data (about 20 s), run the command in the directory the "
            f"server uses (or set RIMAS_DATA_DIR or DATABASE_URL), or pass --data PATH"
        )
    with open_db() as conn:
        yield conn


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.http_limits import MAX_HEADER_BYTES, header_timeout_protocol
    from server.qdrant import QdrantLockedError, check_qdrant_free

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    if not settings.auth_enabled and not is_loopback(host):
        log.error("refusing to bind %s with auth off: set RIMAS_API_KEYS or bind 127.0.0.1", host)
        return 2
    settings = settings.model_copy(update={"host": host, "port": port})
    try:  # before the database starts: a second server on the same data dir stops here, with one line
        check_qdrant_free(settings)
    except QdrantLockedError as exc:
        log.error("cannot start: %s", exc)
        return 2
    log.info("starting RIMAS", extra={"host": host, "port": port, "auth": settings.auth_enabled})
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=10,
        loop="asyncio",  # the loop the suite runs on (uvloop, installed with the console's deps, measured no faster)
        # h11 with a deadline for request line + headers (slowloris); the body's is in BodyLimit
        http=header_timeout_protocol(settings.header_timeout_seconds),
        timeout_keep_alive=settings.keep_alive_seconds,  # idle keep-alive connections close after this
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # larger request line + headers: 400, connection closed
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run workers without the HTTP API: they claim runs from the queue any server process fills."""
    from server.qdrant import QdrantLockedError, check_qdrant_free
    from server.resources import Resources

    settings = get_settings()
    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    if settings.workers < 1:
        log.error("rimas worker needs at least one worker (RIMAS_WORKERS or --workers)")
        return 2
    try:
        check_qdrant_free(settings)
    except QdrantLockedError as exc:
        log.error("cannot start: %s", exc)
        return 2

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        resources = await Resources.open(settings)
        log.info("worker ready", extra={"workers": settings.workers})
        try:
            await stop.wait()
        finally:
            log.info("worker draining", extra={"drain_seconds": settings.drain_seconds})
            await resources.close()

    asyncio.run(work())
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from server.migrate import current_version, migrate

    with running_database(get_settings()) as url, connect(url) as conn:
        applied = migrate(conn)
        _out(f"migrations applied now: {applied or 'none'}; schema version {current_version(conn)}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from server.seed import database_is_empty, seed_database

    with open_db() as conn:
        if args.if_empty and not database_is_empty(conn):
            _out("database already holds data: nothing seeded (drop --if-empty to replace it)")
            return 0
        started = time.perf_counter()
        counts = seed_database(
            conn,
            seed=args.seed,
            scale=args.scale,
            as_of=args.as_of,
            progress=lambda table, n: _out(f"  loaded {table:<14} {n:>9,} rows"),
        )
        _out(f"seeded {sum(counts.values()):,} rows (seed {args.seed}, scale {args.scale}) "
             f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    return 0


@contextlib.asynccontextmanager
async def evaluation_tools(
    settings: Settings, url: str, *, llm: bool, models: dict[str, Any] | None = None
) -> AsyncIterator[str]:
    """The tools' resources for an evaluation on the database at ``url``: a pool, the configured knowledge base (an
    in-memory copy of the policy documents when another process holds the local Qdrant folder), ``models``, and the
    LLM when ``llm`` and one is configured. Yields which knowledge base is used."""
    from qdrant_client import QdrantClient

    from rag.embeddings import make_embedder
    from rag.policy import get_policy
    from rag.service import KnowledgeBase
    from server.db import open_pool
    from server.qdrant import QdrantLockedError, open_qdrant
    from server.resources import chat_model
    from tools import deps as tool_deps
    from tools.deps import ToolDeps

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    embedder = make_embedder(api_key, settings.openai_base_url, settings.embedding_model)
    try:
        client = await asyncio.to_thread(open_qdrant, settings)
        where = f"Qdrant server {settings.qdrant_url}" if settings.qdrant_url else "Qdrant local mode (RIMAS_DATA_DIR)"
    except QdrantLockedError as exc:
        client = QdrantClient(":memory:")
        where = f"an in-memory copy of the policy documents ({exc})"
    try:
        knowledge = KnowledgeBase(client, embedder, policy=get_policy())
        await asyncio.to_thread(knowledge.ensure_collections)
        await asyncio.to_thread(knowledge.ingest_policy_documents)
        pool = await open_pool(url, settings)
        try:
            tool_deps.install(ToolDeps(pool=pool, policy=get_policy(), knowledge=knowledge, models=dict(models or {}),
                                       llm=chat_model(settings) if llm else None))  # fmt: skip
            yield where
        finally:
            tool_deps.install(None)
            await pool.close()
    finally:
        await asyncio.to_thread(client.close)


async def _evaluate_deviations(
    settings: Settings, url: str, scenarios: list[Scenario], *, use_llm: bool
) -> tuple[EvaluationReport, str]:
    """Run the deviation evaluation on the database at ``url`` (see :func:`evaluation_tools`); returns the report
    and which knowledge base was used."""
    from graphs.deviation.evaluation import run_evaluation

    async with evaluation_tools(settings, url, llm=use_llm) as where:
        return await run_evaluation(scenarios), where


def cmd_eval_deviation(args: argparse.Namespace) -> int:
    """``rimas eval deviation``: the labelled deviation scenarios through the real graph; 1 when routing or actions
    are under 95 % or a policy violation happened, 2 when the scenario file is unusable."""
    from graphs.deviation.evaluation import ScenarioError, format_report, load_scenarios
    from server.migrate import migrate

    settings = get_settings()
    try:
        scenarios = load_scenarios(Path(args.scenarios) if args.scenarios else None)
    except ScenarioError as exc:
        sys.stderr.write(f"rimas eval deviation: {exc}\n")
        return 2
    with running_database(settings) as url:
        with connect(url) as conn:
            migrate(conn)
        report, knowledge = asyncio.run(_evaluate_deviations(settings, url, scenarios, use_llm=not args.deterministic))
    database = describe_database(settings)
    if args.json:
        _out(json.dumps({"database": database, "knowledge_base": knowledge, **report.to_dict()}, indent=2))
    else:
        _out(f"database: {database}\nknowledge base: {knowledge}\n")
        _out(format_report(report))
    return 0 if report.passed else 1


_PRODUCTS_SQL = "SELECT sku, unit_cost::float8, unit_price::float8 FROM products ORDER BY sku"


def _planning_frames() -> tuple[Any, Any]:
    """``sales_daily`` (as ``date, store, item, sales, discount``) and the products' costs and prices."""
    import pandas as pd
    from psycopg.rows import tuple_row

    from ml.data import load_sales_db

    with open_seeded_db() as conn:
        sales = load_sales_db(conn)
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(_PRODUCTS_SQL)
            products = pd.DataFrame.from_records(cur.fetchall(), columns=["sku", "unit_cost", "unit_price"])
    return sales, products


def cmd_eval_planning(args: argparse.Namespace) -> int:
    """``rimas eval planning``: replay the held-out days of ``sales_daily`` through our plans and two baselines; 1
    when our total cost is not 25 % below the RIMAS rule's and 10 % below the seasonal naive's, 2 for unusable input."""
    from ml.errors import InputError
    from ml.plan_eval import PlanEvalConfig, evaluate_planning, format_report

    settings = get_settings()
    database = describe_database(settings)
    try:
        cfg = PlanEvalConfig(
            items=args.items,
            holdout_days=args.holdout_days,
            review_days=args.review_days,
            lead_time_days=args.lead_time,
            seed=args.seed,
            retrain_each_review=args.retrain,
        )
        sales, products = _planning_frames()
        if len(sales) == 0 or len(products) == 0:
            raise InputError(f"{database} holds no sales or no products: seed it with `rimas seed`", field="data")
        report = evaluate_planning(sales, products, cfg)
    except InputError as exc:
        sys.stderr.write(f"rimas eval planning: {exc}\n")
        return 2
    except psycopg.Error as exc:
        sys.stderr.write(f"rimas eval planning: cannot read {database}: {exc}\n")
        return 2
    _out(f"database: {database}\n")
    _out(format_report(report))
    return 0 if report.passed else 1


def _eval_commands(sub: Any) -> Any:
    """The sub-parsers of ``rimas eval`` (registered by ``eval retrieval``, or made here)."""
    parser = sub.choices.get("eval") or sub.add_parser("eval", help="evaluations")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    nested = parser.add_subparsers(dest="eval_command", metavar="WHAT")
    nested.required = True
    return nested


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-10-31, got {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rimas", description="Retail Intelligence Multi-Agent Service")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the API (migrates, seeds an empty database, serves)")
    serve.add_argument("--host", help="bind address (default RIMAS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default RIMAS_PORT or 8000)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="execute queued runs without serving HTTP (SIGTERM drains)")
    worker.add_argument("--workers", type=int, help="runs executed at once (default RIMAS_WORKERS)")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations (domain + checkpointer)")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="replace the demo data with the deterministic synthetic dataset")
    seed.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    seed.add_argument("--scale", choices=["small", "demo"], default="demo", help="dataset size (default demo)")
    seed.add_argument("--as-of", type=_date, default=None, help="last day of history (default 2026-10-31)")
    seed.add_argument("--if-empty", action="store_true", help="only seed when the database holds no data")
    seed.set_defaults(func=cmd_seed)

    add_ml_commands(sub, open_seeded_db, lambda: describe_database(get_settings()))
    add_rag_commands(sub)
    deviation = _eval_commands(sub).add_parser(
        "deviation",
        help="routing, action and approval accuracy of the deviation workflow on its labelled scenarios",
        description="Run every labelled scenario (graphs/deviation/scenarios.yaml) through the deviation graph on the "
        "configured database and knowledge base, stopping at approvals, and compare the specialists sent, the "
        "actions proposed and the approval asked for with the labels; executed actions are re-judged by the "
        "guardrails. Exit 1 when routing or actions are under 95 % or a policy violation happened.",
    )
    deviation.add_argument("--json", action="store_true", help="print the full report as JSON instead of a table")
    deviation.add_argument("--scenarios", metavar="PATH", help="scenario file (default: the packaged suite)")
    deviation.add_argument("--deterministic", action="store_true",
                           help="route with the rules even when OPENAI_API_KEY configures the LLM supervisor")
    deviation.set_defaults(func=cmd_eval_deviation)
    planning = _eval_commands(sub).add_parser(
        "planning",
        help="replenishment plans vs the seasonal-naive order-up-to and the RIMAS rule on held-out sales days",
        description="Hold out the last days of sales_daily, replay them day by day for a deterministic sample of "
        "(store, item) series through our plans (plan_item on the demand model's P50/P90), an order-up-to policy on "
        "the seasonal-naive forecast and the RIMAS rule (50 units when stock is low), and compare fill rate, stock-out "
        "days, holding cost, lost margin and order cost. Exit 1 when our total cost is not at least 25 %% below the "
        "RIMAS rule's and 10 %% below the seasonal naive's, 2 when the data cannot be used.",
    )
    planning.add_argument("--items", type=int, default=100, help="(store, item) series simulated (default 100)")
    planning.add_argument("--holdout-days", type=int, default=56, help="held-out days replayed (default 56)")
    planning.add_argument("--review-days", type=int, default=14, help="days between plans (default 14)")
    planning.add_argument("--lead-time", type=int, default=3, help="order lead time in days (default 3)")
    planning.add_argument("--seed", type=int, default=7, help="seed of the series sample and the model (default 7)")
    planning.add_argument(
        "--retrain",
        action="store_true",
        help="refit the demand model at every plan day (default: once, before the held-out days)",
    )
    planning.set_defaults(func=cmd_eval_planning)
    add_chat_commands(sub, _eval_commands(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings: Settings = get_settings()
    except ValueError as exc:
        sys.stderr.write(f"rimas: invalid configuration: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_json and sys.stderr.isatty() is False)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
