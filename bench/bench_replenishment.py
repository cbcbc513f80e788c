"""Benchmark: the replenishment policy against base-stock in the lost-sales game.

Plays every demand family x lead time (0, 4, uncertain: promised 4, late 0..4, 25 % never arrive) x critical
ratio (0.5, 0.8, 0.95) on ``--seeds`` seeded demand paths (5 history points, 50 played periods; seeds
``K .. K + N - 1`` with ``--seed-offset K``), and prints the mean normalised reward per cell for both
policies, the gain ``(ours - base) / |base|``, how many games ours won, then the summaries per family,
lead time and critical ratio and overall:

* mean cell gain: the mean over cells of ``(ours - base) / |base|`` (cells with a base near 0 weigh a lot);
* total gain: summed ours over summed base minus 1 (the ratio of the mean normalised rewards);
* mean normalised reward of each policy and the share of games ours won.

    .venv/bin/python bench/bench_replenishment.py [--seeds 20] [--seed-offset 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ml.replenishment_game import Report, run_report
from ml.report import format_table, write_json


def _summary_rows(report: Report, attribute: str) -> list[list[object]]:
    return [
        [
            name,
            o["base_mean"],
            o["ours_mean"],
            f"{o['mean_cell_gain']:+.1%}",
            f"{o['total_gain']:+.1%}",
            f"{o['game_win_share']:.0%}",
        ]
        for name, o in report.by(attribute).items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="replications per cell")
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed")
    parser.add_argument("--json", type=Path, default=None, help="also write every cell and summary as JSON")
    args = parser.parse_args()

    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))
    started = time.perf_counter()
    report = run_report(seeds)
    seconds = time.perf_counter() - started
    out = sys.stdout
    out.write(
        f"replenishment game: {len(report.cells)} cells x {len(seeds)} seeds "
        f"({seeds[0]}..{seeds[-1]}), 5 history points, 50 periods; {seconds:.1f} s\n\n"
    )
    out.write(
        format_table(
            ["family", "lead", "CR", "base-stock", "rimas", "gain", "won"],
            [
                [c.family, c.lead, f"{c.critical_ratio:.2f}", c.base, c.ours, f"{c.gain:+.1%}", f"{c.wins}/{c.games}"]
                for c in report.cells
            ],
        )
        + "\n"
    )
    header = ["base-stock", "rimas", "mean cell gain", "total gain", "games won"]
    for attribute, title in (("family", "family"), ("lead", "lead time"), ("critical_ratio", "CR")):
        out.write("\n" + format_table([title, *header], _summary_rows(report, attribute)) + "\n")
    o = report.overall()
    out.write(
        f"\noverall: base-stock {o['base_mean']:.4f}, rimas {o['ours_mean']:.4f} mean normalised reward; "
        f"mean cell gain {o['mean_cell_gain']:+.1%}; total gain {o['total_gain']:+.1%}; "
        f"rimas won {o['game_win_share']:.0%} of the games\n"
    )
    if args.json:
        write_json(
            args.json,
            {
                "seeds": seeds,
                "cells": [{**c.__dict__, "gain": c.gain} for c in report.cells],
                "by_family": report.by("family"),
                "by_lead": report.by("lead"),
                "by_critical_ratio": report.by("critical_ratio"),
                "overall": o,
                "seconds": seconds,
            },
        )


if __name__ == "__main__":
    main()
