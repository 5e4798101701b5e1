"""One dataset version, from wherever it lives, as the few tables a diff needs.

A version spec is resolved in this order:

1. an existing folder: a publish layout (`dars card` output or a Hub snapshot), i.e.
   `MANIFEST.json` plus `<config>/<split>.parquet` for the queries and labels configs;
2. `hub:ORG/NAME@REV`, `hf://datasets/ORG/NAME@REV` or `ORG/NAME@REV`: a Hub dataset
   at a revision (tag, branch or commit), downloaded with `huggingface_hub.snapshot_download`
   and then read as a publish folder;
3. anything else: a git revision of the repository (`--repo`, default: the working
   folder). Its files are read through `dvc.api.DVCFileSystem(repo, rev=...)`, so DVC
   data comes from the local cache or the DVC remote and git files from the commit.

Outcomes are never held whole in memory: each Parquet file is reduced to per-pair
sufficient statistics (count, sum and sum of squares of the valid scores) with a
pyarrow group-by, plus the generator versions (backend, revision) per model.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from dars.core import schema
from dars.core.errors import (
    NotPublishLayoutError,
    VersionNotFoundError,
    VersionUnreadableError,
)
from dars.core.io import model_file
from dars.core.params import parse

MANIFEST = "MANIFEST.json"
ROUTER_METRICS = "routers/metrics.json"
# Columns of the labels config a diff reads (task is taken from queries when absent).
LABEL_COLUMNS = ("query_id", "model", "n", "mean", "std", "alpha", "beta", "utility")
# Optional provenance columns of generations/outcomes, reported when present.
GENERATOR_COLUMNS = ("backend", "revision", "backend_version")
HUB_RE = re.compile(
    r"^(?:hub:|hf://datasets/)?(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)@(?P<rev>[\w./-]+)$"
)
HUB_PREFIX_RE = re.compile(r"^(?:hub:|hf://datasets/)(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)$")
# Paths of the build in a git revision (the defaults of dvc.yaml).
GIT_PATHS = {
    "queries": "data/queries.parquet",
    "labels": "data/labels.parquet",
    "splits": "data/splits.parquet",
    "outcomes": "data/outcomes",
    "router_metrics": "metrics/routers.json",
    "manifest": f"publish/{MANIFEST}",
}
# Where the package and contract versions were declared across the layouts of this repo.
VERSION_FILES = ("pipeline/dars/__init__.py", "pipeline/__init__.py")
CONTRACT_FILES = ("pipeline/dars/core/schema.py", "pipeline/schema.py")


@dataclass
class Version:
    """What a diff reads of one dataset version."""

    spec: str  # as the user gave it
    kind: str  # git | folder | hub | build
    queries: pd.DataFrame  # query_id, task
    labels: pd.DataFrame  # LABEL_COLUMNS + task
    splits: pd.DataFrame  # query_id, split
    scores: pd.DataFrame | None = None  # query_id, model, count, sum, sumsq (valid scores)
    generators: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    params: dict[str, Any] | None = (
        None  # as recorded (for the params diff; may predate the schema)
    )
    dataset_version: str | None = None
    contract_version: str | None = None
    package_version: str | None = None
    router_metrics: dict[str, Any] | None = None
    manifest_sha256: str | None = None
    git_root: Path | None = None
    git_commit: str | None = None

    @property
    def name(self) -> str:
        """How reports name this version: `0.2.0 (git v0.2.0)`."""
        where = f"{self.kind} {self.spec}"
        return f"{self.dataset_version} ({where})" if self.dataset_version else where

    @property
    def models(self) -> list[str]:
        return sorted(self.labels["model"].unique().tolist())


# ---------------------------------------------------------------------------- reading


def _check_columns(df: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise NotPublishLayoutError(
            f"{what} lacks contract columns {missing}; it has {list(df.columns)}"
        )


def _read_parquet(path: Path, columns: Iterable[str] | None, what: str) -> pa.Table:
    try:
        names = pq.read_schema(path).names
        cols = None if columns is None else [c for c in columns if c in names]
        return pq.read_table(path, columns=cols).replace_schema_metadata(None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise NotPublishLayoutError(f"{what} {str(path)!r} is not readable Parquet: {exc}") from exc


def score_stats(table: pa.Table) -> pa.Table:
    """Per (query_id, model): count, sum and sum of squares of the valid (non-null) scores."""
    t = table.select(["query_id", "model", "score"])
    t = t.filter(pc.is_valid(t.column("score")))
    score = pc.cast(t.column("score"), pa.float64())
    t = pa.table(
        {
            "query_id": t.column("query_id"),
            "model": t.column("model"),
            "score": score,
            "sq": pc.multiply(score, score),
        }
    )
    g = t.group_by(["query_id", "model"]).aggregate(
        [("score", "count"), ("score", "sum"), ("sq", "sum")]
    )
    return g.rename_columns(["query_id", "model", "count", "sum", "sumsq"])


def _outcome_tables(paths: Iterable[Path]) -> Iterator[pa.Table]:
    for path in paths:
        table = _read_parquet(
            path, ["query_id", "model", "score", *GENERATOR_COLUMNS], what="outcomes file"
        )
        if not {"query_id", "model", "score"} <= set(table.column_names):
            raise NotPublishLayoutError(
                f"outcomes file {str(path)!r} lacks contract columns 'query_id'/'model'/'score'; "
                f"it has {table.column_names}"
            )
        yield table


def read_outcomes_table(
    tables: pa.Table | Iterable[pa.Table],
) -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Score statistics per pair and generator versions per model, one table at a time."""
    if isinstance(tables, pa.Table):
        tables = [tables]
    parts: list[pa.Table] = []
    gens: dict[str, dict[str, set[str]]] = {}
    for table in tables:
        parts.append(score_stats(table))
        present = [c for c in GENERATOR_COLUMNS if c in table.column_names]
        if present:
            distinct = table.select(["model", *present]).group_by(["model", *present]).aggregate([])
            for row in distinct.to_pylist():
                entry = gens.setdefault(row["model"], {c: set() for c in GENERATOR_COLUMNS})
                for c in present:
                    if row[c] is not None:
                        entry[c].add(str(row[c]))
    if not parts:
        return pd.DataFrame(columns=["query_id", "model", "count", "sum", "sumsq"]), {}
    merged = pa.concat_tables(parts).group_by(["query_id", "model"])
    merged = merged.aggregate([("count", "sum"), ("sum", "sum"), ("sumsq", "sum")])
    df = merged.rename_columns(["query_id", "model", "count", "sum", "sumsq"]).to_pandas()
    generators = {
        m: {c: sorted(v) for c, v in entry.items() if v} for m, entry in sorted(gens.items())
    }
    return df, generators


def read_outcomes(paths: Iterable[Path]) -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """`read_outcomes_table` over Parquet files, read one at a time."""
    return read_outcomes_table(_outcome_tables(paths))


def _labels_frame(table: pa.Table, queries: pd.DataFrame, what: str) -> pd.DataFrame:
    df = table.to_pandas()
    _check_columns(df, ["query_id", "model", "n", "mean"], what)
    for col in LABEL_COLUMNS:
        if col not in df.columns:
            df[col] = float("nan")
    if "task" not in df.columns:
        df = df.merge(queries[["query_id", "task"]], on="query_id", how="left")
    return df[[*LABEL_COLUMNS, "task"]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotPublishLayoutError(f"{what} {str(path)!r} is not valid JSON: {exc}") from exc


# ---------------------------------------------------------------------------- folder


def is_publish_folder(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() and any((folder / "labels").glob("*.parquet"))


def split_files(config_dir: Path, split: str) -> list[Path]:
    """A config's files for one split: `<split>.parquet` or the card's shards
    `<split>-NNNNN-of-NNNNN.parquet`, in name order."""
    one = config_dir / f"{split}.parquet"
    return [one] if one.exists() else sorted(config_dir.glob(f"{split}-*-of-*.parquet"))


def load_folder(folder: str | Path, *, spec: str | None = None, kind: str = "folder") -> Version:
    """A publish layout: MANIFEST.json and <config>/<split>.parquet (queries, labels;
    outcomes and routers/metrics.json when present)."""
    folder = Path(folder)
    spec = spec or str(folder)
    if not folder.is_dir():
        raise VersionNotFoundError(f"folder {str(folder)!r} does not exist")
    missing = [MANIFEST] if not (folder / MANIFEST).is_file() else []
    missing += [f"{c}/<split>.parquet" for c in ("queries", "labels") if not (folder / c).is_dir()]
    if missing:
        raise NotPublishLayoutError(
            f"folder {str(folder)!r} is not a publish layout: it lacks {', '.join(missing)} "
            "(`dars card` writes MANIFEST.json and <config>/<split>.parquet for the configs "
            f"queries, labels, outcomes, generations; splits {', '.join(schema.SPLITS)})"
        )
    manifest = _json(folder / MANIFEST, "manifest")
    q_parts, l_parts = [], []
    for split in schema.SPLITS:
        for qp in split_files(folder / "queries", split):
            t = _read_parquet(qp, ["query_id", "task"], what="queries file")
            q_parts.append(t.to_pandas().assign(split=split))
        for lp in split_files(folder / "labels", split):
            l_parts.append(_read_parquet(lp, [*LABEL_COLUMNS, "task"], what="labels file"))
    if not q_parts or not l_parts:
        raise NotPublishLayoutError(
            f"folder {str(folder)!r} is not a publish layout: no queries/<split>.parquet or "
            f"labels/<split>.parquet for the splits {', '.join(schema.SPLITS)}"
        )
    qs = pd.concat(q_parts, ignore_index=True)
    _check_columns(qs, ["query_id", "task"], f"queries of {str(folder)!r}")
    labels = _labels_frame(pa.concat_tables(l_parts, promote_options="default"), qs, "labels")
    outcome_files = sorted((folder / "outcomes").glob("*.parquet"))
    scores, generators = read_outcomes(outcome_files) if outcome_files else (None, {})
    metrics_path = folder / ROUTER_METRICS
    params = None
    if isinstance(manifest.get("params_yaml"), str):
        params = yaml.safe_load(manifest["params_yaml"])
    return Version(
        spec=spec,
        kind=kind,
        queries=qs[["query_id", "task"]],
        labels=labels,
        splits=qs[["query_id", "split"]],
        scores=scores,
        generators=generators,
        params=params,
        dataset_version=manifest.get("dataset_version"),
        contract_version=_str(manifest.get("contract_version")),
        package_version=manifest.get("package_version"),
        router_metrics=_json(metrics_path, "router metrics") if metrics_path.exists() else None,
        manifest_sha256=_sha256(folder / MANIFEST),
    )


def _str(x: Any) -> str | None:
    return None if x is None else str(x)


# ---------------------------------------------------------------------------- hub

HUB_PATTERNS = [
    MANIFEST,
    "README.md",
    "queries/*.parquet",
    "labels/*.parquet",
    "outcomes/*.parquet",
    ROUTER_METRICS,
]


def parse_hub_spec(spec: str) -> tuple[str, str] | None:
    """(repo_id, revision) for a Hub spec, else None. A bare ORG/NAME needs a prefix."""
    m = HUB_RE.match(spec)
    if m:
        return m["repo"], m["rev"]
    m = HUB_PREFIX_RE.match(spec)
    if m:
        return m["repo"], "main"
    return None


def load_hub(repo_id: str, revision: str, *, spec: str) -> Version:
    """Download the publish layout of a Hub dataset at a revision and read it."""
    from huggingface_hub import snapshot_download

    from dars.publishing.hub import hub_errors

    try:
        folder = snapshot_download(
            repo_id=repo_id, repo_type="dataset", revision=revision, allow_patterns=HUB_PATTERNS
        )
    except hub_errors() as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise VersionUnreadableError(
            f"Hub dataset {repo_id!r} at revision {revision!r} could not be downloaded: "
            f"{type(exc).__name__}: {reason[:300]}"
        ) from exc
    return load_folder(folder, spec=spec, kind="hub")


# ---------------------------------------------------------------------------- git


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def git_root(repo: str | Path) -> Path:
    r = _git(Path(repo), "rev-parse", "--show-toplevel")
    if r.returncode != 0:
        raise VersionNotFoundError(
            f"{str(repo)!r} is not inside a git repository, so no git revision can be read "
            "(pass --repo, or give a publish folder or a Hub id@revision)"
        )
    return Path(r.stdout.strip())


def resolve_commit(root: Path, rev: str) -> str:
    r = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if r.returncode != 0 or not r.stdout.strip():
        raise VersionNotFoundError(
            f"{rev!r} is not a folder, a Hub id@revision (ORG/NAME@REV) or a git revision "
            f"of {str(root)!r} (git: unknown revision)"
        )
    return r.stdout.strip()


class _GitReader:
    """Files of one git revision through `dvc.api.DVCFileSystem` (DVC cache or remote)."""

    def __init__(self, root: Path, rev: str, commit: str, tmp: Path) -> None:
        from dvc.api import DVCFileSystem

        self.rev, self.tmp = rev, tmp
        self.fs = DVCFileSystem(str(root), rev=commit)

    def exists(self, path: str) -> bool:
        from dvc.exceptions import DvcException

        try:
            return bool(self.fs.exists(path))
        except (DvcException, OSError):
            return False

    def fetch(self, path: str) -> Path:
        """Copy a file or folder of the revision into the temp folder; one-line errors."""
        from dvc.exceptions import DvcException

        local = self.tmp / path
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not self.fs.exists(path):
                raise FileNotFoundError(path)
            self.fs.get(path, str(local), recursive=self.fs.isdir(path))
        except (DvcException, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise VersionUnreadableError(
                f"git revision {self.rev!r}: cannot read {path!r} through DVC "
                f"({type(exc).__name__}: {reason[:300]}); is it built at that revision and "
                "in the DVC cache or pushed to the remote (`dvc push`)?"
            ) from exc
        return local

    def text(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        return self.fetch(path).read_text(encoding="utf-8")


def _declared(text: str | None, name: str) -> str | None:
    if text is None:
        return None
    m = re.search(rf"^{name}\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return m[1] if m else None


def load_git(rev: str, *, repo: str | Path = ".") -> Version:
    """The build at a git revision: data/ and metrics/ through DVC, params via dvc.api."""
    import dvc.api
    from dvc.exceptions import DvcException

    root = git_root(repo)
    commit = resolve_commit(root, rev)
    with tempfile.TemporaryDirectory(prefix="dars-diff-") as tmp:
        reader = _GitReader(root, rev, commit, Path(tmp))
        try:
            params = dvc.api.params_show(repo=str(root), rev=commit)
        except DvcException as exc:
            raise VersionUnreadableError(
                f"git revision {rev!r}: `dvc.api.params_show` failed: {exc}"
            ) from exc
        qt = _read_parquet(reader.fetch(GIT_PATHS["queries"]), ["query_id", "task"], "queries")
        queries = qt.to_pandas()
        _check_columns(queries, ["query_id", "task"], f"queries at {rev!r}")
        labels = _labels_frame(
            _read_parquet(reader.fetch(GIT_PATHS["labels"]), [*LABEL_COLUMNS, "task"], "labels"),
            queries,
            f"labels at {rev!r}",
        )
        splits = _read_parquet(reader.fetch(GIT_PATHS["splits"]), None, "splits").to_pandas()
        _check_columns(splits, ["query_id", "split"], f"splits at {rev!r}")
        outcomes = reader.fetch(GIT_PATHS["outcomes"])
        recorded = parse(params if isinstance(params, Mapping) else {}, f"params at {rev!r}")
        models = list(recorded.names)
        files = [model_file(outcomes, m) for m in models if model_file(outcomes, m).exists()]
        files = files or sorted(outcomes.glob("*.parquet"))
        scores, generators = read_outcomes(files)
        metrics_text = reader.text(GIT_PATHS["router_metrics"])
        manifest_text = reader.text(GIT_PATHS["manifest"])
        manifest = json.loads(manifest_text) if manifest_text else {}
        package = manifest.get("package_version") or next(
            (v for f in VERSION_FILES if (v := _declared(reader.text(f), "__version__"))), None
        )
        contract = _str(manifest.get("contract_version")) or next(
            (v for f in CONTRACT_FILES if (v := _declared(reader.text(f), "CONTRACT_VERSION"))),
            None,
        )
    return Version(
        spec=rev,
        kind="git",
        queries=queries[["query_id", "task"]],
        labels=labels,
        splits=splits[["query_id", "split"]],
        scores=scores,
        generators=generators,
        params=dict(params),
        dataset_version=_str(recorded.value.dataset_version),
        contract_version=contract,
        package_version=package,
        router_metrics=json.loads(metrics_text) if metrics_text else None,
        manifest_sha256=(
            hashlib.sha256(manifest_text.encode("utf-8")).hexdigest() if manifest_text else None
        ),
        git_root=root,
        git_commit=commit,
    )


# ---------------------------------------------------------------------------- any


def load_version(spec: str, *, repo: str | Path = ".") -> Version:
    """A folder, a Hub id@revision, or a git revision of `repo` (see the module docstring)."""
    if not spec or not spec.strip():
        raise VersionNotFoundError("an empty dataset version was given")
    path = Path(spec)
    if path.is_dir():
        return load_folder(path, spec=spec)
    hub = parse_hub_spec(spec)
    if hub:
        return load_hub(*hub, spec=spec)
    if path.exists():
        raise NotPublishLayoutError(f"{spec!r} is a file, not a publish folder")
    return load_git(spec, repo=repo)
