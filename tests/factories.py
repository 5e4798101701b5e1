"""Shared builders for tests and benchmarks (test modules never import each other).

- Tables: `queries(n, ...)` and `variants(queries, k, ...)` build small contract-valid
  frames; `write_inputs` writes them where the stages read them (queries.parquet,
  variants.parquet). Tests vary only what matters to them (ids, prompts, the rewrite).
- Releases: `make_dars_release` writes a tiny DARS reference release (scored JSONL),
  numbered as the release numbers it (the original query is prompt_variant_id -1).
- Repositories: `DvcRepo` (a real temporary DVC repo with this project's pipeline),
  `Built` (an existing one, by path), `make_build` + `tiny_params` (the simulated build
  that conftest's session fixture `sim_built` makes once per test run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dars.core import runlog, schema
from dars.core.io import write_frame


def queries(
    n: int,
    *,
    ids: Callable[[int], str] = lambda i: f"q{i:03d}",
    prompt: Callable[[int], str] = lambda i: f"What is {i} + 1?",
    reference: Callable[[int], str] = lambda i: str(i + 1),
    task: str = "arith",
    grader: str = "numeric",
) -> pd.DataFrame:
    """n numeric-graded queries (the `queries` contract)."""
    return pd.DataFrame(
        {
            "query_id": [ids(i) for i in range(n)],
            "task": task,
            "prompt": [prompt(i) for i in range(n)],
            "reference": [reference(i) for i in range(n)],
            "grader": grader,
            "source": "test",
            "license": "MIT",
            "metadata": "{}",
        }
    )


def variants(
    q: pd.DataFrame,
    k: int,
    *,
    rewrite: Callable[[int, str], str] = lambda v, p: p if v == 0 else f"Question {v}: {p}",
) -> pd.DataFrame:
    """k accepted variants per query (the `variants` contract); variant v's prompt is
    rewrite(v, original prompt)."""
    return pd.DataFrame(
        [
            {
                "query_id": qid,
                "variant_id": v,
                "prompt": rewrite(v, p),
                "method": "template",
                "accepted": True,
                "reject_reason": None,
            }
            for qid, p in zip(q["query_id"], q["prompt"], strict=True)
            for v in range(k)
        ]
    )


def write_inputs(root: Path, q: pd.DataFrame, v: pd.DataFrame) -> tuple[Path, Path]:
    """Write queries.parquet and variants.parquet under root; return their paths."""
    qp, vp = root / "queries.parquet", root / "variants.parquet"
    write_frame(q, qp, schema=schema.QUERIES)
    write_frame(v, vp, schema=schema.VARIANTS)
    return qp, vp


# --------------------------------------------------------------------------- repos and builds

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT_ID = {"NAME": "t", "EMAIL": "t@t"}


def run_ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command; an AssertionError with its output if it fails."""
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def repo_env(root: Path) -> dict[str, str]:
    """The environment a temporary repo's `dvc`/`git` run in: this venv first, the repo's
    own pipeline copy on the path, its run logs under its own .dars/ (not the session's
    DARS_RUNS_DIR), fixed git identity."""
    env = {k: v for k, v in os.environ.items() if k != runlog.RUNS_DIR_ENV}
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(root / "pipeline"),
        "DVC_NO_ANALYTICS": "1",
        **{f"GIT_{w}_{k}": v for w in ("AUTHOR", "COMMITTER") for k, v in GIT_ID.items()},
    }


def base_params() -> dict:
    """The repo's params.yaml, for tests to shrink."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


class Built:
    """A temporary DVC repository (git, DVC cache and all), by path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = repo_env(root)

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return run_ok(["git", *args], self.root, self.env)

    def dvc(self, *args: str) -> subprocess.CompletedProcess:
        return run_ok([str(BIN / "dvc"), *args], self.root, self.env)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def copy(self, dst: Path) -> Built:
        """A copy to mutate in one test."""
        shutil.copytree(self.root, dst, symlinks=True)
        return Built(dst)


class DvcRepo(Built):
    """A new temporary DVC repo holding a copy of this project's pipeline and dvc.yaml."""

    def __init__(self, root: Path, params: dict) -> None:
        super().__init__(root)
        # with its bytecode caches, if any (still valid: copytree keeps the sources' mtimes)
        shutil.copytree(REPO / "pipeline", root / "pipeline")
        shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
        for extra in ("dataset_card.md", "pyproject.toml"):  # read by the card stage
            if (REPO / extra).exists():
                shutil.copy(REPO / extra, root / extra)
        self.write_params(params)
        (root / ".gitignore").write_text(".dars/\n")
        self.git("init", "-q")
        self.dvc("init", "-q")
        shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
        self.dvc("config", "core.analytics", "false")


# The simulated build that the card, publish, diff and remote tests share (conftest's
# session fixture `sim_built`): the router stages are replaced by small files written here,
# so that it exercises the card and not router training.
ROUTER_OUTS = {"models", "metrics/routers.json"}


def _outs(stage: dict) -> set[str]:
    found = set()
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key) or []:
            found |= set(entry) if isinstance(entry, dict) else {entry}
    return found


def write_routers(root: Path) -> None:
    """Small real skops routers and a metrics JSON, standing in for `dars train/evaluate`."""
    import numpy as np
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor

    from dars.core.skops_io import skops_io

    sio = skops_io()

    x = np.arange(12.0).reshape(6, 2)
    y = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3])
    (root / "models").mkdir(parents=True, exist_ok=True)
    sio.dump(Ridge(alpha=1.0).fit(x, y), root / "models" / "ridge-dars.skops")
    for r in (0, 1):  # single-shot repeats: only r0 is published
        sio.dump(
            KNeighborsRegressor(n_neighbors=2).fit(x, y),
            root / "models" / f"knn-single_shot-r{r}.skops",
        )
    (root / "models" / "index.json").write_text(
        json.dumps(
            {
                "ridge-dars": "ridge-dars.skops",
                "knn-single_shot": ["knn-single_shot-r0.skops", "knn-single_shot-r1.skops"],
            }
        )
    )
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    metric = {"value": 0.41, "ci_low": 0.3, "ci_high": 0.5, "std": 0.0}
    (root / "metrics" / "routers.json").write_text(
        json.dumps(  # the shape `dars evaluate` writes, NaN included
            {
                "n_test_queries": 2,
                "routers": {
                    "ridge": {
                        "dars": {"utility": metric, "apgr": {**metric, "value": float("nan")}},
                        "dars_minus_single_shot": {
                            "utility": {
                                "diff": 0.02,
                                "ci_low": -0.01,
                                "ci_high": 0.05,
                                "p_value": 0.3,
                            }
                        },
                    }
                },
            }
        )
    )


def make_build(root: Path, params: dict) -> DvcRepo:
    """A temp DVC repo with this project's pipeline, dvc.yaml and dataset_card.md, whose
    router stages (train/evaluate, read by the card) are replaced by `write_routers`."""
    repo = DvcRepo(root, params)
    shutil.copy(REPO / "dataset_card.md", root / "dataset_card.md")
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc_yaml["stages"] = {
        name: st for name, st in dvc_yaml["stages"].items() if not (_outs(st) & ROUTER_OUTS)
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    write_routers(root)
    return repo


def tiny_params(models: dict | None = None) -> dict:
    """5 arithmetic + 5 HumanEval queries, K = 2, N = 2, two simulated models."""
    p = base_params()
    p["prepare"]["tasks"] = {
        "arithmetic": {"kind": "arithmetic", "n": 5, "difficulty": 1, "seed": 7},
        "humaneval": {"kind": "humaneval", "n": 5, "offset": 0},
    }
    p["reformulate"]["k"] = 2
    p["sample"]["n"] = 2
    p["card"]["max_router_share"] = 1.0  # publish every selected router (the budget: below)
    p["models"] = models or {
        "sim-strong": {"backend": "simulated", "sim_ability": 1.0, "price_per_1k_prompt": 1.0},
        "sim-weak": {"backend": "simulated", "sim_ability": -0.5, "price_per_1k_prompt": 0.1},
    }
    return p


def tiny_real_params() -> dict:
    """The real gemma-3-270m build (llama.cpp) that conftest's session fixture `real_built`
    builds once for the real end-to-end and publish tests: 5 arithmetic + 1 HumanEval
    queries, K = 2, N = 2, two prompting configurations, three cheap routers."""
    p = base_params()
    p["prepare"]["tasks"] = {
        "arithmetic": {"kind": "arithmetic", "n": 5, "difficulty": 0, "seed": 7},
        "humaneval": {"kind": "humaneval", "n": 1, "offset": 0},
    }
    p["reformulate"]["k"] = 2
    p["sample"]["n"] = 2
    keep = ["gemma-fewshot", "gemma-oneshot"]
    p["models"] = {k: {**p["models"][k], "max_tokens": 24} for k in keep}
    # the router stages run again in the tests; what they compute is tested on sim_full_built
    p["routers"].update(names=["best-single", "knn", "ridge"], single_shot_repeats=1)
    p["evaluate"]["bootstrap"] = 200
    return p  # 6 queries x 2 variants x 2 samples x 2 models = 48 generations
    # (6, not fewer: the card stage refuses a build whose validation split is empty)


def full_sim_params() -> dict:
    """The full simulated pipeline (train, evaluate and card included) that conftest's
    session fixture `sim_full_built` builds once for the end-to-end, router and determinism
    tests: 80 arithmetic queries, K = 3, N = 8 (enough labels for the coverage checks), two
    simulated models, every default router with 2 single-shot repeats."""
    p = base_params()
    p["prepare"]["tasks"] = {
        "arithmetic": {"kind": "arithmetic", "n": 80, "difficulty": 2, "seed": 3},
    }
    p["reformulate"]["k"] = 3
    p["sample"]["n"] = 8
    p["models"] = {
        "sim-strong": {
            "backend": "simulated",
            "sim_ability": 1.5,
            "price_per_1k_prompt": 1.0,
            "price_per_1k_completion": 4.0,
        },
        "sim-weak": {
            "backend": "simulated",
            "sim_ability": -0.5,
            "price_per_1k_prompt": 0.1,
            "price_per_1k_completion": 0.4,
        },
    }
    p["routers"]["single_shot_repeats"] = 2
    p["evaluate"]["bootstrap"] = 200
    return p


# --------------------------------------------------------------------------- router data

AGG = {
    "prior_alpha": 0.5,
    "prior_beta": 0.5,
    "ci": 0.95,
    "lambda_cost": 0.05,
    "beta_risk": 0.2,
    "max_error_rate": 1.0,
}
# model -> (success probability on "algebra" queries, on "poetry" queries, cost per sample)
POOL = {"math-pro": (0.9, 0.15, 4.0), "poet": (0.15, 0.9, 4.0), "tiny": (0.45, 0.45, 1.0)}


def synthetic_build(n_queries: int = 40, k: int = 2, n: int = 3, seed: int = 0) -> dict:
    """Queries whose text says which model is good for them (topic words), real aggregate."""
    import numpy as np

    from dars.stages.aggregate import aggregate_labels
    from dars.stages.split import assign_splits

    rng = np.random.default_rng(seed)
    topics = ["algebra", "poetry"]
    words = {
        "algebra": ["equation", "solve", "variable", "integer", "sum"],
        "poetry": ["rhyme", "verse", "sonnet", "stanza", "metaphor"],
    }
    qrows, orows = [], []
    for i in range(n_queries):
        topic = topics[i % 2]
        picked = " ".join(rng.choice(words[topic], size=3))
        qid = f"q{i:03d}"
        qrows.append(
            {"query_id": qid, "task": "synth", "prompt": f"A {topic} question: {picked} #{i}"}
        )
        for model, (p_alg, p_poe, cost) in POOL.items():
            p = p_alg if topic == "algebra" else p_poe
            for v in range(k):
                for s in range(n):
                    failed = i == 0 and model == "tiny"  # every generation of a pair fails
                    orows.append(
                        {
                            "query_id": qid,
                            "model": model,
                            "variant_id": v,
                            "sample_id": s,
                            "score": None if failed else float(rng.random() < p),
                            "status": "error" if failed else "ok",
                            "cost": cost * (1 + 0.1 * rng.random()),
                            "backend": "simulated",
                            "true_p": p,
                        }
                    )
    queries = pd.DataFrame(qrows)
    outcomes = pd.DataFrame(orows)
    labels = aggregate_labels(outcomes=outcomes, queries=queries, settings=AGG)
    splits = assign_splits(
        queries=queries, seed=0, fractions={"train": 0.6, "validation": 0.1, "test": 0.3}
    )
    return {"queries": queries, "outcomes": outcomes, "labels": labels, "splits": splits}


# --------------------------------------------------------------------------- sample inputs

SAMPLE_QUERIES, SAMPLE_K, SAMPLE_N = 12, 3, 4  # the sample-stage tests' shape


def sample_inputs(tmp: Path, n_queries: int = SAMPLE_QUERIES) -> tuple[Path, Path]:
    """n numeric queries with SAMPLE_K variants each ("[k] prompt"), written under tmp."""
    q = queries(n_queries)
    return write_inputs(tmp, q, variants(q, SAMPLE_K, rewrite=lambda k, p: f"[{k}] {p}"))


# --------------------------------------------------------------------------- simulated versions
# (`dars diff` tests: a build's data/ and metrics/ from a dars.versioning.simulate version)


def outcome_rows(version) -> pd.DataFrame:
    """Binary score rows that reproduce a simulated version's per-pair counts and sums."""
    import numpy as np

    s = version.scores
    count, wins = s["count"].astype(int).to_numpy(), s["sum"].astype(int).to_numpy()
    idx = np.repeat(np.arange(len(s)), count)
    rank = np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
    return pd.DataFrame(
        {
            "query_id": s["query_id"].to_numpy()[idx],
            "model": s["model"].to_numpy()[idx],
            "variant_id": 0,
            "sample_id": rank,
            "score": (rank < wins[idx]).astype("float64"),
            "backend": "simulated",
            "revision": "simulated",
        }
    )


def metrics_json(utility: float) -> dict:
    cell = {"value": utility, "ci_low": utility - 0.05, "ci_high": utility + 0.05}
    return {"routers": {"knn": {"dars": {"utility": cell, "quality": cell}}}}


def write_build(root: Path, version) -> None:
    """data/ and metrics/ of a build, as the pipeline's stages write them."""
    data = root / "data"
    (data / "outcomes").mkdir(parents=True, exist_ok=True)
    version.queries.to_parquet(data / "queries.parquet", index=False)
    version.labels.to_parquet(data / "labels.parquet", index=False)
    version.splits.to_parquet(data / "splits.parquet", index=False)
    rows = outcome_rows(version)
    for m, g in rows.groupby("model"):
        g.to_parquet(data / "outcomes" / f"{m}.parquet", index=False)
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics" / "routers.json").write_text(json.dumps(metrics_json(0.5)))


# the DARS release's row fields (DESIGN.md / issue 11)
DARS_FIELDS = (
    "dataset",
    "split",
    "query_id",
    "model",
    "prompt_variant_id",
    "decode_id",
    "observation_type",
    "original_question",
    "input_question",
    "context",
    "output_text",
    "usage",
    "score",
    "cost",
    "finish_reason",
    # added by the authors' dataset/score_generations.py
    "score_type",
    "parse_success",
    "predicted_answer",
    "gold_answer",
    "em",
)
DARS_MODELS = ("google/gemma-3-12b-it", "meta-llama/Llama-3.1-8B-Instruct")
K, N = 3, 2


def dars_row(**values) -> dict:
    row = dict(values)
    assert set(row) <= set(DARS_FIELDS), set(row) - set(DARS_FIELDS)
    return row


def make_dars_release(root: Path, *, n_train: int = 10, n_test: int = 4, seed: int = 0) -> Path:
    """<root>/<dataset>/{train,test}_scored_generations.jsonl + metadata.json, numbered as
    the release numbers them: the original query is prompt_variant_id -1, rewrites 0..K-1.

    train: K rewrites x N decodes per (query, model), no original; test: the two DARS
    views, prompt_variation (K rewrites x decode 0) and decoding_variation (the original,
    -1, x N decodes).
    """
    rng = np.random.default_rng(seed)
    src = root / "dars_release"
    for dataset in ("gpqa", "math"):
        (src / dataset).mkdir(parents=True)
        for split, n_q in (("train", n_train), ("test", n_test)):
            lines = []
            for qi in range(n_q):
                qid = f"{dataset}-{split}-{qi}"
                question = f"{dataset} question {qi}: what is {qi} plus {qi * 3}?"
                for mi, model in enumerate(DARS_MODELS):
                    p = 0.3 + 0.4 * mi
                    if split == "train":
                        cells = [("", v, d) for v in range(K) for d in range(N)]
                    else:
                        cells = [("prompt_variation", v, 0) for v in range(K)]
                        cells += [("decoding_variation", -1, d) for d in range(N)]
                    for obs_type, v, d in cells:
                        ok = bool(rng.random() < p)
                        parsed = (qi + d) % 5 != 4  # some answers could not be parsed
                        row = dars_row(
                            dataset=dataset,
                            split=split,
                            query_id=qid,
                            model=model,
                            prompt_variant_id=v,
                            decode_id=d,
                            original_question=question,
                            input_question=question if v < 0 else f"Rewrite {v}: {question}",
                            context=None,
                            output_text=f"answer {qi + v + d}",
                            usage={"prompt_tokens": 21 + v, "completion_tokens": 5 + d},
                            score=float(ok and parsed),
                            cost=0.001 * (1 + mi),
                            finish_reason="stop",
                            score_type="binary_math_exact_match",
                            parse_success=parsed,
                            predicted_answer=str(qi * 4 if ok else qi) if parsed else "",
                            gold_answer=[str(qi * 4)] if dataset == "gpqa" else str(qi * 4),
                            em=float(ok and parsed),
                        )
                        if obs_type:
                            row["observation_type"] = obs_type
                        lines.append(json.dumps(row))
            (src / dataset / f"{split}_scored_generations.jsonl").write_text(
                "\n".join(lines) + "\n"
            )
    (src / "metadata.json").write_text(
        json.dumps({"license": "CC-BY-4.0 (GPQA), MIT (MATH-500)", "lambda": 0.05, "beta": 0.2})
    )
    return src


def protocol_tables(
    *,
    n_train: int = 8,
    n_test: int = 4,
    models: tuple[str, ...] = ("big", "small"),
    tasks: tuple[str, ...] = ("t1", "t2"),
    k: int = 3,
    n: int = 2,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(outcomes, splits, queries) shaped like an imported DARS release, per task: train
    queries with k rewrites x n decodes, test queries with `prompt_variation` rows (k
    rewrites x 1 decode) and `decoding_variation` rows (the original x n decodes).
    Scores are Bernoulli draws whose rate depends on the model and the query's parity."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows, splits, qs = [], [], []
    for task in tasks:
        for i in range(n_train + n_test):
            qid = f"{task}-q{i:03d}"
            split = "train" if i < n_train else "test"
            splits.append({"query_id": qid, "task": task, "split": split})
            qs.append({"query_id": qid, "task": task, "prompt": f"{task} question {i % 2} {i}"})
            cells = (
                [(v, d, None) for v in range(1, k + 1) for d in range(n)]
                if split == "train"
                else [(v, 0, "prompt_variation") for v in range(1, k + 1)]
                + [(0, d, "decoding_variation") for d in range(n)]
            )
            for j, model in enumerate(models):
                rate = 0.8 if (i + j) % 2 == 0 else 0.2
                for v, d, obs in cells:
                    rows.append(
                        {
                            "query_id": qid,
                            "model": model,
                            "variant_id": v,
                            "sample_id": d,
                            "score": float(rng.random() < rate),
                            "cost": 0.001 * (j + 1) * (1 + rng.random()),
                            "observation_type": obs,
                        }
                    )
    return pd.DataFrame(rows), pd.DataFrame(splits), pd.DataFrame(qs)
