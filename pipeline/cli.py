"""`dars <stage> ...`: one subcommand per DVC stage, each with explicit paths.

The work lives in each stage module's `run(**kwargs)`; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pipeline.errors import DarsError


def _prepare(a: argparse.Namespace) -> Any:
    from pipeline import prepare

    return prepare.run(
        params_path=a.params, out=a.out, quarantine_out=a.quarantine, stats_out=a.stats
    )


def _reformulate(a: argparse.Namespace) -> Any:
    from pipeline import reformulate

    return reformulate.run(params_path=a.params, queries=a.queries, out=a.out)


def _sample(a: argparse.Namespace) -> Any:
    from pipeline import sample

    return sample.run(
        params_path=a.params,
        model=a.model,
        queries=a.queries,
        variants=a.variants,
        out=a.out,
        checkpoint_dir=a.checkpoint_dir,
    )


def _grade(a: argparse.Namespace) -> Any:
    from pipeline import grade

    return grade.run(params_path=a.params, generations=a.generations, queries=a.queries, out=a.out)


def _validate(a: argparse.Namespace) -> Any:
    from pipeline import validate

    return validate.run(
        params_path=a.params,
        queries=a.queries,
        variants=a.variants,
        generations_dir=a.generations,
        outcomes_dir=a.outcomes,
        report=a.report,
        docs_dir=a.docs,
    )


def _aggregate(a: argparse.Namespace) -> Any:
    from pipeline import aggregate

    return aggregate.run(
        params_path=a.params,
        outcomes_dir=a.outcomes,
        queries=a.queries,
        validation_report=a.validation,
        out=a.out,
    )


def _split(a: argparse.Namespace) -> Any:
    from pipeline import split

    return split.run(params_path=a.params, queries=a.queries, out=a.out)


def _summary(a: argparse.Namespace) -> Any:
    from pipeline import summary

    return summary.run(labels=a.labels, out=a.out)


def _check_params(a: argparse.Namespace) -> Any:
    from pipeline import params

    params.check_all(params.load_params(a.params))
    print(f"{a.params}: OK")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dars", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(
        name: str, fn: Callable[[argparse.Namespace], Any], help: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(func=fn)
        sp.add_argument(
            "--params", default="params.yaml", help="params file (default: %(default)s)"
        )
        return sp

    sp = cmd("prepare", _prepare, "load source tasks into the queries table")
    sp.add_argument("--out", required=True)
    sp.add_argument("--quarantine", required=True, help="Parquet file of rejected source rows")
    sp.add_argument("--stats", required=True, help="JSON counts of kept/quarantined rows")

    sp = cmd("reformulate", _reformulate, "write K meaning-preserving variants per query")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--out", required=True)

    sp = cmd("sample", _sample, "sample N generations per variant from one model config")
    sp.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--variants", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument(
        "--checkpoint-dir", required=True, help="resumable shard folder (kept across killed runs)"
    )

    sp = cmd("grade", _grade, "score generations with the query's grader")
    sp.add_argument("--generations", required=True)
    sp.add_argument("--queries", required=True)
    sp.add_argument("--out", required=True)

    sp = cmd("validate", _validate, "Great Expectations suites over all tables")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--variants", required=True)
    sp.add_argument("--generations", required=True, help="folder of <model>.parquet")
    sp.add_argument("--outcomes", required=True, help="folder of <model>.parquet")
    sp.add_argument("--report", required=True)
    sp.add_argument("--docs", required=True, help="folder for the Data Docs HTML")

    sp = cmd("aggregate", _aggregate, "one capability distribution per (query, model)")
    sp.add_argument("--outcomes", required=True, help="folder of <model>.parquet")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--validation", required=True, help="validation report JSON (must pass)")
    sp.add_argument("--out", required=True)

    sp = cmd("split", _split, "query-grouped split stratified by task")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--out", required=True)

    sp = sub.add_parser("summary", help="print a per-model summary of the labels")
    sp.set_defaults(func=_summary)
    sp.add_argument("--labels", required=True)
    sp.add_argument("--out", default=None, help="optional JSON output")

    cmd("check-params", _check_params, "validate params.yaml without running anything")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DarsError as exc:
        print(f"dars {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
