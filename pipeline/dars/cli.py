"""The `dars` command: one subcommand per DVC stage, plus check-params, publish and bench.

Each handler calls its stage module's `run(**kwargs)`; path flags default to dvc.yaml's
layout. Errors are one line naming the problem (DARS_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dars.core.errors import DarsError

if TYPE_CHECKING:
    from dars.core.params import ParamsFile


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
        out=a.out or f"{GENERATIONS}/{a.model}.parquet",
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

    out = a.out or f"{OUTCOMES}/{Path(a.generations).name}"
    return grade.run(params_path=a.params, generations=a.generations, queries=a.queries, out=out)


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
        lock=None if a.no_lock else a.lock,
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
        headline_out=a.headline,
        protocol=a.protocol,
        runs=a.runs,
        beta_per_task=a.beta_per_task,
    )


def _bench(a: argparse.Namespace) -> Any:
    from dars import bench

    return bench.run(
        dataset=a.dataset,
        router=a.router,
        predictions=a.predictions,
        router_args=bench.parse_router_args(a.router_arg),
        split=a.split,
        output=a.output,
        baselines=a.baselines.split(",") if a.baselines else None,
        lambda_cost=a.lambda_cost,
        beta_risk=a.beta_risk,
        n_boot=a.bootstrap,
        seed=a.seed,
        protocol=a.protocol,
        runs=a.runs,
        beta_per_task=a.beta_per_task,
    )


def protocol_flags(sp: argparse.ArgumentParser) -> None:
    """--protocol, --runs and --beta-per-task (evaluate and bench)."""
    sp.add_argument(
        "--protocol",
        choices=["ours", "dars"],
        default="ours",
        help="ours: utility with paired-bootstrap intervals (default); dars: what the DARS "
        "authors' code computes (docs/routers.md)",
    )
    sp.add_argument(
        "--runs",
        type=int,
        default=None,
        help="--protocol dars: single-shot runs, seeded 42 + r (default: 100)",
    )
    sp.add_argument(
        "--beta-per-task",
        action="append",
        default=[],
        metavar="TASK=BETA",
        help="--protocol dars: beta of one task (repeatable; others get 0.2 or --beta)",
    )


def _registry_checks() -> dict[str, Callable[[ParamsFile], Any]]:
    """Section -> the check of its names that live in registries (task kinds and graders,
    rewriters, routers and featurizers), on top of the schema in dars.core.params."""
    from dars.core.params import section
    from dars.evaluation.training import train_settings
    from dars.stages.reformulate import rewriter
    from dars.tasks.configs import task_configs

    return {
        "prepare": task_configs,
        "reformulate": lambda p: rewriter(section(p, "reformulate").method),
        "routers": train_settings,
    }


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


def _export(a: argparse.Namespace) -> Any:
    """Write a build's data/ in another tool's layout (dars.exporters)."""
    from dars.exporters import export

    result = export(a.format, data_dir=a.data_dir, params=a.params, out=a.out)
    rows = ", ".join(f"{f} {n}" for f, n in result["files"].items())
    print(f"export {a.format}: {a.data_dir} -> {a.out}/ ({rows})")
    return result


def _convert_gguf(a: argparse.Namespace) -> Any:
    from dars.backends.hf_folder import convert_gguf

    record = convert_gguf(gguf=a.gguf, out=a.out, dtype=a.dtype)
    print(
        f"{a.out}: {len(record['files'])} files ({record['dtype']}) from {record['source']} "
        f"in {record['seconds']} s; revision {record['revision']} (set it as "
        f"models.<name>.revision with model_path: {a.out})"
    )
    return record


def _check_params(a: argparse.Namespace) -> Any:
    from dars.core import params
    from dars.core.errors import DarsError

    loaded = params.load_params(a.params)
    errors = params.errors(loaded)
    if not errors:  # names in registries, once the shapes are right
        # a workspace `dars import` wrote names its source's tasks and rewrites, which no
        # loader or rewriter produces here (nothing is prepared or reformulated again)
        imported = loaded.has("imported") and params.section(loaded, "imported").source
        skip = {"prepare", "reformulate"} if imported else set()
        for name, check in _registry_checks().items():
            if loaded.has(name) and name not in skip:
                try:
                    check(loaded)
                except DarsError as exc:
                    errors.append(str(exc))
    if errors:
        for e in errors:
            print(f"dars check-params: error: {e}", file=sys.stderr)
        raise SystemExit(f"dars check-params: {len(errors)} error(s) in {a.params}")
    print(f"{a.params}: OK")
    vllm_models = [
        name
        for name in params.model_names(loaded)
        if params.model_config(loaded, name).backend == "vllm"
    ]
    if vllm_models:
        from dars.backends.vllm import REPRODUCIBILITY_NOTE

        print(f"note: models {', '.join(vllm_models)} (backend vllm): {REPRODUCIBILITY_NOTE}")


# The default of every path flag is where dvc.yaml puts that file (a test checks this).
QUERIES = "data/queries.parquet"
VARIANTS = "data/variants.parquet"
GENERATIONS = "data/generations"
OUTCOMES = "data/outcomes"
LABELS = "data/labels.parquet"
SPLITS = "data/splits.parquet"
VALIDATION = "reports/validation.json"
MODELS_DIR = "models"
ROUTER_METRICS = "metrics/routers.json"

DESCRIPTION = """\
DARS builds LLM-routing datasets whose labels are capability distributions: for every
(query, model) pair, many generations over meaning-preserving variants of the query.

Each pipeline stage is a subcommand; `dvc repro` runs them all in order (see dvc.yaml).
Path flags default to the layout of dvc.yaml, so a stage can be rerun by hand from the
repository root with no flags at all."""

EPILOG = """\
jobs:
  rebuild the dataset       dvc repro            (or: make repro)
  check params.yaml         dars check-params
  benchmark your router     dars bench --dataset DIR_OR_HUB_ID --router my_module:MyRouter
  score a file of choices   dars bench --dataset DIR_OR_HUB_ID --predictions choices.csv
  other tools' layouts      dars import dars-release SRC --out OUT; dars export llmrouter OUT
docs: docs/ (mkdocs serve)"""


def _version() -> str:
    from dars import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dars",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"dars {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(
        name: str,
        fn: Callable[[argparse.Namespace], Any],
        help: str,
        description: str = "",
        *,
        params: bool = True,
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help,
            description=f"{help[0].upper()}{help[1:]}."
            + (f"\n\n{description}" if description else ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(func=fn)
        if params:
            sp.add_argument(
                "--params", default="params.yaml", help="parameters file (default: %(default)s)"
            )
        return sp

    def path(sp: argparse.ArgumentParser, flag: str, default: str | None, help: str) -> None:
        shown = " (default: %(default)s)" if default is not None else ""
        sp.add_argument(flag, default=default, help=help + shown)

    sp = cmd(
        "prepare",
        _prepare,
        "load the source tasks of params.yaml into the queries table",
        "Rows that fail a check go to the quarantine table with a reason; the stage fails\n"
        "when more than prepare.max_quarantine_fraction of a task's rows are quarantined.",
    )
    path(sp, "--out", QUERIES, "queries table (Parquet)")
    path(sp, "--quarantine", "data/quarantine.parquet", "rejected source rows (Parquet)")
    path(sp, "--stats", "reports/prepare.json", "kept/quarantined counts per task (JSON)")

    sp = cmd(
        "reformulate",
        _reformulate,
        "write K meaning-preserving variants of every query",
        "Variant 0 is the original; reformulate.method picks how the others are made.",
    )
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--out", VARIANTS, "variants table (Parquet)")

    sp = cmd(
        "sample",
        _sample,
        "sample N generations per variant from one model configuration",
        "Resumable: finished work is kept in --checkpoint-dir, so a killed run restarts\n"
        "where it stopped. Engine time per generation goes to .dars/runs/sample/MODEL.json.",
    )
    sp.add_argument("--model", required=True, help="a name under `models` in params.yaml")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--variants", VARIANTS, "variants table")
    path(sp, "--out", None, f"generations table (default: {GENERATIONS}/MODEL.parquet)")
    path(sp, "--checkpoint-dir", ".dars/checkpoints", "resumable shard folder")
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
    sp.add_argument("--ray-cpus-per-worker", type=float, default=1.0, help="(default: 1.0)")
    sp.add_argument("--ray-gpus-per-worker", type=float, default=0.0, help="(default: 0.0)")

    sp = cmd(
        "grade",
        _grade,
        "score one model's generations with each query's grader",
        "A failed generation is never graded as wrong: it gets score null.",
    )
    sp.add_argument(
        "--generations", required=True, help=f"generations table, e.g. {GENERATIONS}/MODEL.parquet"
    )
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--out", None, f"outcomes table (default: {OUTCOMES}/ + the generations file name)")

    sp = cmd(
        "validate",
        _validate,
        "check every table against the data contract (Great Expectations)",
        "Writes a JSON report and a Data Docs HTML site; fails when any expectation fails.",
    )
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--variants", VARIANTS, "variants table")
    path(sp, "--generations", GENERATIONS, "folder of MODEL.parquet generations")
    path(sp, "--outcomes", OUTCOMES, "folder of MODEL.parquet outcomes")
    path(sp, "--report", VALIDATION, "validation report (JSON)")
    path(sp, "--docs", "reports/data_docs", "folder for the Data Docs HTML")

    sp = cmd(
        "aggregate",
        _aggregate,
        "turn scored outcomes into one capability distribution per (query, model)",
    )
    path(sp, "--outcomes", OUTCOMES, "folder of MODEL.parquet outcomes")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--validation", VALIDATION, "validation report (must have passed)")
    path(sp, "--out", LABELS, "labels table (Parquet)")

    sp = cmd("split", _split, "assign every query to train/validation/test, stratified by task")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--out", SPLITS, "splits table (Parquet)")

    sp = cmd("summary", _summary, "print a per-model summary of the labels", params=False)
    path(sp, "--labels", LABELS, "labels table")
    path(sp, "--out", None, "also write the summary as JSON, keyed by model (default: none)")

    sp = cmd(
        "card",
        _card,
        "write publish/: the Hub dataset layout, rendered card, routers and manifest",
    )
    path(sp, "--template", "dataset_card.md", "Jinja dataset card template")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--labels", LABELS, "labels table")
    path(sp, "--splits", SPLITS, "splits table")
    path(sp, "--variants", VARIANTS, "variants table")
    path(sp, "--generations", GENERATIONS, "folder of MODEL.parquet generations")
    path(sp, "--outcomes", OUTCOMES, "folder of MODEL.parquet outcomes")
    path(sp, "--validation", VALIDATION, "validation report")
    path(sp, "--models-dir", MODELS_DIR, "folder of ROUTER.skops files")
    path(sp, "--router-metrics", ROUTER_METRICS, "router test metrics (JSON)")
    path(sp, "--lock", "dvc.lock", "dvc.lock, recorded in the manifest")
    sp.add_argument(
        "--no-lock",
        action="store_true",
        help="record no dvc.lock (outside DVC, e.g. a workspace written by `dars import`)",
    )
    path(sp, "--out", "publish", "publish folder")

    sp = cmd(
        "publish",
        _publish,
        "upload publish/ to the Hugging Face Hub (not a pipeline stage)",
        "Refuses a stale, failed or simulated build; needs HF_TOKEN.",
        params=False,
    )
    sp.add_argument("--repo-id", required=True, help="ORG/NAME of the Hub dataset")
    sp.add_argument("--revision", default=None, help="tag to create (default: dataset_version)")
    sp.add_argument("--private", action="store_true", help="create the repo as private")
    sp.add_argument("--dry-run", action="store_true", help="list what would be uploaded only")
    path(sp, "--publish-dir", "publish", "folder written by `dars card`")
    path(sp, "--validation", VALIDATION, "validation report (must have passed)")
    path(sp, "--lock", "dvc.lock", "dvc.lock of the build")

    sp = cmd(
        "train",
        _train,
        "fit the reference routers on DARS labels and on single-shot labels",
    )
    path(sp, "--labels", LABELS, "labels table")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--splits", SPLITS, "splits table")
    path(sp, "--outcomes", OUTCOMES, "folder of MODEL.parquet outcomes (single-shot draws)")
    path(sp, "--out-dir", MODELS_DIR, "folder for ROUTER-*.skops and index.json")

    sp = cmd("evaluate", _evaluate, "score the trained routers on the test split")
    path(sp, "--labels", LABELS, "labels table")
    path(sp, "--queries", QUERIES, "queries table")
    path(sp, "--splits", SPLITS, "splits table")
    path(sp, "--models-dir", MODELS_DIR, "the folder `dars train` wrote")
    path(sp, "--metrics", ROUTER_METRICS, "full metrics (JSON)")
    path(sp, "--table", "metrics/routers.md", "Markdown tables")
    path(sp, "--plots-dir", "plots", "folder for the plots (PNG and CSV)")
    path(sp, "--headline", "metrics/routers_headline.json", "flat headline metrics (JSON)")
    path(
        sp,
        "--outcomes",
        OUTCOMES,
        "folder of MODEL.parquet outcomes: adds DARS's evaluation "
        "views (prompt_variation, decoding_variation) of the test split",
    )
    protocol_flags(sp)

    sp = cmd(
        "bench",
        _bench,
        "benchmark your router on a published DARS dataset",
        "Your router is a class with fit(X, Y) and predict(X) (see docs/benchmarks.md); it is\n"
        "scored next to the reference routers and the oracle, with paired-bootstrap intervals.",
        params=False,
    )
    sp.add_argument("--dataset", required=True, help="Hub dataset id or local folder")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--router", help="my_module:MyRouter or path/file.py:MyRouter")
    who.add_argument(
        "--predictions",
        default=None,
        help="score a file of choices instead: CSV (query_id,model header) or JSONL",
    )
    sp.add_argument("--split", default="test", help="split to score on (default: %(default)s)")
    sp.add_argument("--output", default=None, help="results JSON (default: none)")
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
    sp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (1000)")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    protocol_flags(sp)

    sp = cmd(
        "diff",
        _diff,
        "what changed between two dataset versions",
        "Each version is a git revision, a publish folder, or a Hub id (hub:ORG/NAME@REV).",
        params=False,
    )
    for name in ("old", "new"):
        sp.add_argument(
            name, help="git revision, publish folder, or Hub id@revision (hub:ORG/NAME@REV)"
        )
    sp.add_argument("--out", default=None, help="diff JSON output (default: none)")
    sp.add_argument("--markdown", default=None, help="diff Markdown output (default: none)")
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

    sp = sub.add_parser(
        "export",
        help="write a build in another tool's layout (DARS release JSONL, LLMRouter JSONL)",
        description="Write the build under --data-dir to OUT: `dars-release` (the DARS "
        "reference release's <dataset>/{train,test}_scored_generations.jsonl + metadata.json, "
        "which the authors' router scripts read) or `llmrouter` (LLMRouter's routing JSONL, "
        "one row per query and model). See docs/import-export.md.",
    )
    sp.set_defaults(func=_export)
    sp.add_argument("format", choices=["dars-release", "llmrouter"], help="target layout")
    sp.add_argument("out", help="folder to write")
    sp.add_argument(
        "--data-dir", default="data", help="the build's data/ folder (default: %(default)s)"
    )
    sp.add_argument(
        "--params", default="params.yaml", help="the build's params.yaml (default: %(default)s)"
    )

    sp = cmd(
        "convert-gguf",
        _convert_gguf,
        "turn a GGUF model into a Hugging Face folder for the vllm backend",
        "Dequantises with transformers (the .venv-vllm of `make vllm-cpu` has what it needs),\n"
        "saves the tokenizer with <bos> on, and writes the folder's content hash, the\n"
        "revision to pin in params.yaml, to dars_revision.json.",
        params=False,
    )
    sp.add_argument(
        "--gguf",
        default="auto",
        help="a .gguf file, or auto: the packaged gemma-3-270m Q4_K_M (default: %(default)s)",
    )
    sp.add_argument("--out", required=True, help="new folder to write")
    sp.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["bfloat16", "float16", "float32"],
        help="weight dtype (default: %(default)s)",
    )

    cmd(
        "check-params",
        _check_params,
        "check params.yaml without running anything",
        "Checks every section against the schema (docs/params.md) and lists every error.",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "sample":
        from dars.sampling.worker import in_worker, run_sample_in_worker

        if not in_worker():  # the engine runs in a child: a native crash is one line
            return run_sample_in_worker(argv, model=args.model, checkpoint_dir=args.checkpoint_dir)
    try:
        args.func(args)
    except DarsError as exc:
        print(f"dars {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dars {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as exc:
        if os.environ.get("DARS_DEBUG"):
            raise
        kind = type(exc).__name__
        print(
            f"dars {args.command}: error: {kind}: {exc} (set DARS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
