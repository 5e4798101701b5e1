"""`dars <stage> ...`: one subcommand per DVC stage, each with explicit paths.

The work lives in each stage module's `run(**kwargs)`; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from dars.core.errors import DarsError


def _prepare(a: argparse.Namespace) -> Any:
    from dars.stages import prepare

    return prepare.run(
        params_path=a.params, out=a.out, quarantine_out=a.quarantine, stats_out=a.stats
    )


def _reformulate(a: argparse.Namespace) -> Any:
    from dars.stages import reformulate

    return reformulate.run(params_path=a.params, queries=a.queries, out=a.out)


def _sample(a: argparse.Namespace) -> Any:
    from dars.stages import sample

    return sample.run(
        params_path=a.params,
        model=a.model,
        queries=a.queries,
        variants=a.variants,
        out=a.out,
        checkpoint_dir=a.checkpoint_dir,
        executor=a.executor,
        ray_options={
            "address": a.ray_address,
            "workers": a.ray_workers,
            "cpus_per_worker": a.ray_cpus_per_worker,
            "gpus_per_worker": a.ray_gpus_per_worker,
        },
    )


def _grade(a: argparse.Namespace) -> Any:
    from dars.stages import grade

    return grade.run(params_path=a.params, generations=a.generations, queries=a.queries, out=a.out)


def _validate(a: argparse.Namespace) -> Any:
    from dars.stages import validate

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
    from dars.stages import aggregate

    return aggregate.run(
        params_path=a.params,
        outcomes_dir=a.outcomes,
        queries=a.queries,
        validation_report=a.validation,
        out=a.out,
    )


def _split(a: argparse.Namespace) -> Any:
    from dars.stages import split

    return split.run(params_path=a.params, queries=a.queries, out=a.out)


def _summary(a: argparse.Namespace) -> Any:
    from dars.stages import summary

    return summary.run(labels=a.labels, out=a.out)


def _card(a: argparse.Namespace) -> Any:
    from dars.stages import card

    return card.run(
        params_path=a.params,
        template=a.template,
        queries=a.queries,
        labels=a.labels,
        splits=a.splits,
        variants=a.variants,
        generations_dir=a.generations,
        outcomes_dir=a.outcomes,
        validation=a.validation,
        models_dir=a.models_dir,
        router_metrics=a.router_metrics,
        lock=a.lock,
        out=a.out,
    )


def _publish(a: argparse.Namespace) -> Any:
    from dars.publishing import hub as publish

    return publish.run(
        publish_dir=a.publish_dir,
        repo_id=a.repo_id,
        revision=a.revision,
        private=a.private,
        dry_run=a.dry_run,
        validation=a.validation,
        lock=a.lock,
    )


def _train(a: argparse.Namespace) -> Any:
    from dars.stages import train

    return train.run(
        params_path=a.params,
        labels=a.labels,
        queries=a.queries,
        splits=a.splits,
        outcomes_dir=a.outcomes,
        out_dir=a.out_dir,
    )


def _evaluate(a: argparse.Namespace) -> Any:
    from dars.stages import evaluate

    return evaluate.run(
        params_path=a.params,
        labels=a.labels,
        queries=a.queries,
        splits=a.splits,
        models_dir=a.models_dir,
        metrics_out=a.metrics,
        table_out=a.table,
        plots_dir=a.plots_dir,
        outcomes_dir=a.outcomes,
    )


def _bench(a: argparse.Namespace) -> Any:
    from dars import bench

    return bench.run(
        dataset=a.dataset,
        router=a.router,
        router_args=bench.parse_router_args(a.router_arg),
        split=a.split,
        output=a.output,
        baselines=a.baselines.split(",") if a.baselines else None,
        lambda_cost=a.lambda_cost,
        beta_risk=a.beta_risk,
        n_boot=a.bootstrap,
        seed=a.seed,
    )


def _registry_checks() -> list[Callable[[dict[str, Any]], Any]]:
    """Checks of names that live in registries (task kinds, rewriters, routers), on top
    of the schema in dars.core.params."""
    from dars.stages import prepare, reformulate, train

    return [
        prepare.task_configs,
        lambda p: reformulate.rewriter(p["reformulate"].get("method", "template")),
        train.train_settings,
    ]


def _diff(a: argparse.Namespace) -> Any:
    from dars.versioning import report

    return report.run(old=a.old, new=a.new, out=a.out, markdown=a.markdown, fdr=a.fdr, repo=a.repo)


def _import(a: argparse.Namespace) -> Any:
    """Read a source release, write OUT as a workspace, then validate and aggregate it."""
    from pathlib import Path

    from dars.importers import import_source
    from dars.stages import aggregate, validate

    out = Path(a.out)
    report = import_source(a.source, a.path, out=out, allow_pickle=a.allow_pickle)
    data, params = out / "data", str(out / "params.yaml")
    validate.run(
        params_path=params,
        queries=str(data / "queries.parquet"),
        variants=str(data / "variants.parquet"),
        generations_dir=str(data / "generations"),
        outcomes_dir=str(data / "outcomes"),
        report=str(out / "reports" / "validation.json"),
        docs_dir=str(out / "reports" / "data_docs"),
    )
    aggregate.run(
        params_path=params,
        outcomes_dir=str(data / "outcomes"),
        queries=str(data / "queries.parquet"),
        validation_report=str(out / "reports" / "validation.json"),
        out=str(data / "labels.parquet"),
    )
    dropped = report["dropped"]
    print(
        f"import {a.source}: {report['queries']} queries x {len(report['models'])} models, "
        f"{report['observations']} observations ({report['failed_generations']} failed) -> "
        f"{out}/; splits {report['splits']}; dropped {dropped} source rows"
        + (
            ": "
            + "; ".join(
                f"{r} {v['rows']} (first at {', '.join(v['first_at'])})"
                for r, v in report["by_reason"].items()
            )
            if dropped
            else ""
        )
    )
    return report


def _check_params(a: argparse.Namespace) -> Any:
    from dars.core import params
    from dars.core.errors import DarsError

    raw = params.load_params(a.params)
    errors = params.errors(raw)
    if not errors:  # names in registries, once the shapes are right
        sections = ("prepare", "reformulate", "routers")
        # a workspace `dars import` wrote names its source's tasks and rewrites, which no
        # loader or rewriter produces here (nothing is prepared or reformulated again)
        skip = {"prepare", "reformulate"} if (raw.get("imported") or {}).get("source") else set()
        for check, name in zip(_registry_checks(), sections, strict=True):
            if name in raw and name not in skip:
                try:
                    check(raw)
                except DarsError as exc:
                    errors.append(str(exc))
    if errors:
        for e in errors:
            print(f"dars check-params: error: {e}", file=sys.stderr)
        raise SystemExit(f"dars check-params: {len(errors)} error(s) in {a.params}")
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
    sp.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: in this process; ray: Ray Data over a Ray cluster (the [ray] extra)",
    )
    sp.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
        "else a local cluster on this machine)",
    )
    sp.add_argument(
        "--ray-workers", type=int, default=2, help="engines (Ray actors), one per worker"
    )
    sp.add_argument("--ray-cpus-per-worker", type=float, default=1.0)
    sp.add_argument("--ray-gpus-per-worker", type=float, default=0.0)

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

    sp = cmd("card", _card, "write publish/: Hub dataset layout, rendered card, routers, manifest")
    sp.add_argument("--template", required=True, help="Jinja dataset card (dataset_card.md)")
    sp.add_argument("--queries", required=True)
    sp.add_argument("--labels", required=True)
    sp.add_argument("--splits", required=True)
    sp.add_argument("--variants", required=True, help="the reformulate stage's variants")
    sp.add_argument("--generations", required=True, help="folder of <model>.parquet")
    sp.add_argument("--outcomes", required=True, help="folder of <model>.parquet")
    sp.add_argument("--validation", required=True, help="validation report JSON")
    sp.add_argument("--models-dir", required=True, help="folder of <router>.skops files")
    sp.add_argument("--router-metrics", required=True, help="router test metrics JSON")
    sp.add_argument(
        "--lock",
        default=None,
        help="dvc.lock, recorded in the manifest (omit outside DVC, e.g. after `dars import`)",
    )
    sp.add_argument("--out", required=True, help="publish folder")

    sp = sub.add_parser("publish", help="upload publish/ to the Hugging Face Hub (not a stage)")
    sp.set_defaults(func=_publish)
    sp.add_argument("--repo-id", required=True, help="ORG/NAME of the Hub dataset")
    sp.add_argument("--revision", default=None, help="tag to create (default: dataset_version)")
    sp.add_argument("--private", action="store_true", help="create the repo as private")
    sp.add_argument("--dry-run", action="store_true", help="list what would be uploaded only")
    sp.add_argument("--publish-dir", default="publish", help="(default: %(default)s)")
    sp.add_argument(
        "--validation", default="reports/validation.json", help="(default: %(default)s)"
    )
    sp.add_argument("--lock", default="dvc.lock", help="(default: %(default)s)")

    sp = cmd("train", _train, "fit the reference routers on single-shot and DARS labels")
    sp.add_argument("--labels", required=True)
    sp.add_argument("--queries", required=True)
    sp.add_argument("--splits", required=True)
    sp.add_argument(
        "--outcomes", required=True, help="folder of <model>.parquet (single-shot label draws)"
    )
    sp.add_argument("--out-dir", required=True, help="folder for <router>-*.skops + index.json")

    sp = cmd("evaluate", _evaluate, "score the trained routers on the test split")
    sp.add_argument("--labels", required=True)
    sp.add_argument("--queries", required=True)
    sp.add_argument("--splits", required=True)
    sp.add_argument("--models-dir", required=True, help="the folder `dars train` wrote")
    sp.add_argument("--metrics", required=True, help="metrics JSON output")
    sp.add_argument("--table", required=True, help="Markdown table output")
    sp.add_argument("--plots-dir", required=True, help="folder for the PNG plots")
    sp.add_argument(
        "--outcomes",
        default=None,
        help="folder of <model>.parquet: adds DARS's evaluation views (prompt_variation, "
        "decoding_variation) of the test split",
    )

    sp = sub.add_parser("bench", help="benchmark your router on a published DARS dataset")
    sp.set_defaults(func=_bench)
    sp.add_argument("--dataset", required=True, help="Hub dataset id or local folder")
    sp.add_argument("--router", required=True, help="my_module:MyRouter or path/file.py:MyRouter")
    sp.add_argument("--split", default="test", help="split to score on (default: %(default)s)")
    sp.add_argument("--output", default=None, help="results JSON")
    sp.add_argument(
        "--baselines", default=None, help="comma-separated reference routers (default: all)"
    )
    sp.add_argument(
        "--router-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="keyword argument for your router's constructor (repeatable; V is read as YAML)",
    )
    sp.add_argument(
        "--lambda",
        "--lambda-cost",
        dest="lambda_cost",
        type=float,
        default=None,
        help="λ of the utility (default: the dataset's, from its MANIFEST.json, else 0.05)",
    )
    sp.add_argument(
        "--beta",
        "--beta-risk",
        dest="beta_risk",
        type=float,
        default=None,
        help="β of the utility (default: the dataset's, from its MANIFEST.json, else 0.2)",
    )
    sp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    sp.add_argument("--seed", type=int, default=0)

    sp = sub.add_parser("diff", help="what changed between two dataset versions")
    sp.set_defaults(func=_diff)
    for name in ("old", "new"):
        sp.add_argument(
            name, help="git revision, publish folder, or Hub id@revision (hub:ORG/NAME@REV)"
        )
    sp.add_argument("--out", default=None, help="diff JSON output")
    sp.add_argument("--markdown", default=None, help="diff Markdown output")
    sp.add_argument("--fdr", type=float, default=0.05, help="BH false discovery rate of labels")
    sp.add_argument("--repo", default=".", help="git/DVC repository of revisions (default: .)")

    sp = sub.add_parser(
        "import",
        help="import another release (DARS release, RouterBench) as a ready workspace",
        description="Write OUT as a workspace (params.yaml, data/, reports/) from a source "
        "release, then run validate and aggregate on it.",
    )
    sp.set_defaults(func=_import)
    sp.add_argument("source", choices=["dars-release", "routerbench"], help="source layout")
    sp.add_argument(
        "path", help="dars-release: the release folder; routerbench: the pickled DataFrame"
    )
    sp.add_argument("--out", required=True, help="workspace folder to write")
    sp.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading a pickle (it runs code from the file: only for files you trust)",
    )

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
