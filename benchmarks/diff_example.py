"""The example of docs/diff.md: two real builds of the pipeline (simulated backend) in a
temporary git + DVC repository, then `dars diff v0.1.0 v0.2.0`.

v0.1.0: 24 arithmetic + 6 HumanEval queries, K = 3, N = 4, three simulated models.
v0.2.0: a new sampling seed, `sim-weak` ability -1.0 -> 1.5, 6 more arithmetic queries,
and `card.previous: v0.1.0` (so its card carries "Changes since 0.1.0").

    python benchmarks/diff_example.py [--workdir /tmp/dars-diff-example]

Writes benchmarks/results/diff_example.{json,md} (the diff) and prints the command line.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.factories import BIN, DvcRepo, base_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default="/tmp/dars-diff-example")
    a = ap.parse_args()
    root = Path(a.workdir) / "repo"
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    p = base_params()
    p["prepare"]["tasks"] = {
        "arithmetic": {"kind": "arithmetic", "n": 24, "difficulty": 1, "seed": 7},
        "humaneval": {"kind": "humaneval", "n": 6, "offset": 0},
    }
    p["reformulate"]["k"] = 3
    p["sample"]["n"] = 4
    p["models"] = {
        "sim-strong": {"backend": "simulated", "sim_ability": 1.0, "price_per_1k_prompt": 1.0},
        "sim-mid": {"backend": "simulated", "sim_ability": 0.0, "price_per_1k_prompt": 0.3},
        "sim-weak": {"backend": "simulated", "sim_ability": -1.0, "price_per_1k_prompt": 0.1},
    }
    p["routers"]["single_shot_repeats"] = 2
    p["evaluate"]["bootstrap"] = 200
    repo = DvcRepo(root, p)
    shutil.copy(REPO / "dataset_card.md", root / "dataset_card.md")
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "0.1.0")
    repo.git("tag", "v0.1.0")
    p = repo.params()
    p["dataset_version"] = "0.2.0"
    p["sample"]["seed"] = 99
    p["models"]["sim-weak"]["sim_ability"] = 1.5
    p["prepare"]["tasks"]["arithmetic"]["n"] = 30
    p["card"]["previous"] = "v0.1.0"
    repo.write_params(p)
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "0.2.0")
    repo.git("tag", "v0.2.0")
    out = REPO / "benchmarks" / "results"
    cmd = [
        str(BIN / "dars"), "diff", "v0.1.0", "v0.2.0",
        "--out", str(out / "diff_example.json"), "--markdown", str(out / "diff_example.md"),
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=root, env=repo.env, capture_output=True, text=True)
    print(r.stdout + r.stderr, end="")
    r.check_returncode()


if __name__ == "__main__":
    main()
