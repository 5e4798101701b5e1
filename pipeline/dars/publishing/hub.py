"""`dars publish`: upload publish/ to the Hugging Face Hub as a versioned dataset.

Not a DVC stage: it has an external side effect. Before anything leaves the machine it
refuses (one exception class each) when

- reports/validation.json says `success: false`              FailedValidationReportError
- a file in publish/ differs from MANIFEST.json               ManifestMismatchError
- publish/ is stale against dvc.lock                          StalePublishError
  (`dvc status card` is not clean: a dependency, a param, the code or publish/ itself
  changed since the card stage ran; or an input md5 in the manifest is not the one
  dvc.lock now records for that path)
- any published generation/outcome/label row has backend == "simulated"
                                                              SimulatedBuildError
- --repo-id is not the repo id the card was rendered for      RepoIdMismatchError
- the version tag already exists on the Hub                   HubTagExistsError

Upload: `create_repo(exist_ok=True, repo_type="dataset")`, `upload_folder` (the remote
mirrors publish/), `create_tag` on that commit (tag = dataset_version unless
--revision). The token comes from the usual huggingface_hub sources (HF_TOKEN,
`hf auth login`); this module only asks whether one exists and never reads, prints,
logs or writes it. `--dry-run` lists the files that would be uploaded and contacts no
server. The Hub client is a parameter (`api=`), so tests pass a recording stand-in.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from dars.core.errors import (
    FailedValidationReportError,
    HubTagExistsError,
    HubTokenMissingError,
    HubUploadError,
    ManifestMismatchError,
    RepoIdMismatchError,
    SimulatedBuildError,
    StalePublishError,
)
from dars.core.io import read_json
from dars.publishing.manifest import MANIFEST, file_digest, lock_file_md5s
from dars.validation.gate import require_passed

# Files a Hub snapshot has that the card stage did not write.
HUB_EXTRA_FILES = (".gitattributes",)
HUB_EXTRA_DIRS = (".cache",)
BACKEND_CONFIGS = ("generations", "outcomes", "labels")


class HubApi(Protocol):
    """The part of `huggingface_hub.HfApi` that publishing uses."""

    def create_repo(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        repo_type: str | None = None,
        exist_ok: bool = False,
    ) -> Any: ...

    def list_repo_refs(self, repo_id: str, *, repo_type: str | None = None) -> Any: ...

    def upload_folder(
        self,
        *,
        repo_id: str,
        folder_path: str | Path,
        commit_message: str | None = None,
        repo_type: str | None = None,
        delete_patterns: list[str] | str | None = None,
    ) -> Any: ...

    def create_tag(
        self,
        repo_id: str,
        *,
        tag: str,
        tag_message: str | None = None,
        revision: str | None = None,
        repo_type: str | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class UploadPlan:
    repo_id: str
    tag: str
    private: bool
    folder: Path
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def describe(self) -> str:
        lines = [
            f"target: https://huggingface.co/datasets/{self.repo_id} "
            f"(repo_type=dataset, {'private' if self.private else 'public'}), tag {self.tag!r}",
            f"folder: {self.folder}",
            f"{len(self.files)} files, {self.total_bytes} bytes:",
        ]
        lines += [f"  {size:>12}  {path}" for path, size in self.files]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- checks


def load_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ManifestMismatchError(
            f"{str(path)!r} does not exist; {str(folder)!r} was not written by `dars card` "
            "(run `dvc repro card`)"
        )
    return read_json(path, what="manifest")


def verify_manifest(folder: str | Path) -> dict[str, Any]:
    """Check every file of a publish folder (or a Hub snapshot) against MANIFEST.json.

    Returns the manifest; raises ManifestMismatchError naming each missing, changed or
    unlisted file. A consumer can run it on `snapshot_download(...)`.
    """
    folder = Path(folder)
    manifest = load_manifest(folder)
    listed = manifest["files"]
    problems = []
    for rel, meta in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif file_digest(path, "sha256") != meta["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest")
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (
            path.is_file()
            and rel not in listed
            and rel != MANIFEST
            and rel not in HUB_EXTRA_FILES
            and path.relative_to(folder).parts[0] not in HUB_EXTRA_DIRS
        ):
            problems.append(f"{rel}: not listed in the manifest")
    if problems:
        raise ManifestMismatchError(
            f"{str(folder)!r} does not match its {MANIFEST}: "
            + "; ".join(problems[:10])
            + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else "")
            + ". Rebuild it with `dvc repro card`"
        )
    return manifest


def dvc_status(*, root: Path, stage: str) -> dict[str, Any]:
    """`dvc status <stage>` through DVC's Python API ({} when up to date)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        # DVC resolves a stage's paths against the working directory: run it from the root
        with contextlib.chdir(root), Repo(str(root)) as repo:
            return dict(repo.status(targets=[stage]))
    except DvcException as exc:
        raise StalePublishError(
            f"refusing to publish: cannot check stage {stage!r} of the DVC repo at "
            f"{str(root)!r} against dvc.lock: {exc}"
        ) from exc


def check_fresh(
    *, folder: str | Path, manifest: Mapping[str, Any], lock: str | Path, stage: str = "card"
) -> None:
    """publish/ must be what dvc.lock says the card stage produced from current inputs."""
    lock = Path(lock)
    if not lock.exists():
        raise StalePublishError(
            f"refusing to publish: {str(lock)!r} does not exist, so publish/ cannot be "
            "checked against it; build it with `dvc repro`"
        )
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    if stage not in (data.get("stages") or {}):
        raise StalePublishError(
            f"refusing to publish: {str(lock)!r} has no entry for stage {stage!r}; "
            "publish/ was not built by `dvc repro`"
        )
    outs = [lock.resolve().parent / o["path"] for o in data["stages"][stage].get("outs") or []]
    if Path(folder).resolve() not in outs:
        raise StalePublishError(
            f"refusing to publish: {str(folder)!r} is not an output of stage {stage!r} in "
            f"{str(lock)!r} (its outputs: {[str(o) for o in outs]}), so it cannot be checked"
        )
    recorded = lock_file_md5s(data)
    moved = [
        f"{path} (manifest {meta['md5'][:8]}, dvc.lock {recorded[path][:8]})"
        for path, meta in sorted((manifest.get("inputs") or {}).items())
        if path in recorded and recorded[path] != meta["md5"]
    ]
    if moved:
        raise StalePublishError(
            "refusing to publish: publish/ was built from inputs that dvc.lock no longer "
            f"records: {'; '.join(moved[:5])}. Run `dvc repro` to rebuild the card"
        )
    status = dvc_status(root=lock.resolve().parent, stage=stage)
    if status:
        raise StalePublishError(
            f"refusing to publish: publish/ is stale against {str(lock)!r}; `dvc status "
            f"{stage}` reports {json.dumps(status, sort_keys=True, default=str)}. "
            "Run `dvc repro` to rebuild it"
        )


def check_not_simulated(folder: str | Path, manifest: Mapping[str, Any]) -> None:
    """No published generation/outcome/label row may come from the simulated backend."""
    folder = Path(folder)
    hits = []
    for rel in sorted(manifest["files"]):
        if rel.split("/")[0] in BACKEND_CONFIGS and rel.endswith(".parquet"):
            col = pq.read_table(folder / rel, columns=["backend"]).column("backend")
            n = pc.sum(pc.equal(col, "simulated")).as_py() or 0
            if n:
                hits.append(f"{rel}: {n} of {len(col)} rows")
    if hits:
        raise SimulatedBuildError(
            "refusing to publish: the build used the simulated backend (backend == "
            f"'simulated' in {'; '.join(hits[:6])}). Simulated rows are for method studies "
            "and tests only; build with a real backend (llama_cpp, vllm, openai)"
        )


def check_repo_id(*, repo_id: str, manifest: Mapping[str, Any]) -> None:
    if repo_id != manifest.get("repo_id"):
        raise RepoIdMismatchError(
            f"refusing to publish to {repo_id!r}: the card was rendered for "
            f"{manifest.get('repo_id')!r} (its load_dataset snippets name that repo). Set "
            f"'card.repo_id: {repo_id}' in params.yaml and run `dvc repro`, or pass "
            f"--repo-id {manifest.get('repo_id')}"
        )


def plan_upload(
    *,
    folder: str | Path,
    repo_id: str,
    revision: str | None,
    private: bool,
    lock: str | Path,
    validation: str | Path,
    stage: str = "card",
) -> UploadPlan:
    """Run every refusal check and return what would be uploaded."""
    folder = Path(folder)
    require_passed(validation, refusing="publish", error=FailedValidationReportError)
    manifest = verify_manifest(folder)
    check_repo_id(repo_id=repo_id, manifest=manifest)
    check_fresh(folder=folder, manifest=manifest, lock=lock, stage=stage)
    check_not_simulated(folder, manifest)
    files = [(rel, int(meta["size"])) for rel, meta in sorted(manifest["files"].items())]
    files.append((MANIFEST, (folder / MANIFEST).stat().st_size))
    return UploadPlan(
        repo_id=repo_id,
        tag=revision or manifest["dataset_version"],
        private=private,
        folder=folder,
        files=sorted(files),
    )


# ---------------------------------------------------------------------------- upload


def default_api() -> HubApi:
    """`HfApi()` with the token from the usual sources; fails early if there is none."""
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise HubTokenMissingError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` "
            "(the token is read by huggingface_hub and never printed or stored by dars)"
        )
    return HfApi()


def hub_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a Hub request raises: HTTP errors and the HTTP client's transport
    errors (httpx2, httpx or requests, depending on the huggingface_hub version)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError]
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def upload(*, plan: UploadPlan, api: HubApi) -> str:
    """create_repo -> upload_folder -> create_tag; returns the commit id that is tagged."""
    try:
        api.create_repo(
            repo_id=plan.repo_id, repo_type="dataset", private=plan.private, exist_ok=True
        )
        refs = api.list_repo_refs(repo_id=plan.repo_id, repo_type="dataset")
        if any(t.name == plan.tag for t in refs.tags):
            raise HubTagExistsError(
                f"refusing to publish: tag {plan.tag!r} already exists in dataset "
                f"{plan.repo_id!r}; bump 'dataset_version' in params.yaml (and `dvc repro`) "
                "or pass another --revision"
            )
        commit = api.upload_folder(
            repo_id=plan.repo_id,
            repo_type="dataset",
            folder_path=str(plan.folder),
            commit_message=f"DARS dataset {plan.tag}",
            delete_patterns=["*"],  # the remote mirrors publish/ (.gitattributes is kept)
        )
        api.create_tag(
            repo_id=plan.repo_id,
            repo_type="dataset",
            tag=plan.tag,
            revision=commit.oid,
            tag_message=f"DARS dataset {plan.tag}",
        )
    except hub_errors() as exc:
        raise HubUploadError(
            f"the Hub request for dataset {plan.repo_id!r} failed ({type(exc).__name__}): {exc}"
        ) from exc
    return str(commit.oid)


def run(
    *,
    publish_dir: str,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    validation: str = "reports/validation.json",
    lock: str = "dvc.lock",
    stage: str = "card",
    api: HubApi | None = None,
) -> UploadPlan:
    plan = plan_upload(
        folder=publish_dir,
        repo_id=repo_id,
        revision=revision,
        private=private,
        lock=lock,
        validation=validation,
        stage=stage,
    )
    if dry_run:
        print("dry run: nothing is uploaded and no server is contacted\n" + plan.describe())
        return plan
    commit = upload(plan=plan, api=api if api is not None else default_api())
    print(
        f"published {len(plan.files)} files to https://huggingface.co/datasets/{plan.repo_id} "
        f"(commit {commit}, tag {plan.tag!r})"
    )
    return plan
