"""The diff as Markdown (`dars diff --markdown`, the card's "Changes since" section), and
`dars diff` itself."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dars.core.io import write_json, write_text
from dars.core.params import ParamsSource, as_params, dataset_version, section
from dars.versioning.compare import DEFAULT_FDR, diff_versions
from dars.versioning.sources import Version, load_version


def _f(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _set_line(name: str, d: Mapping[str, Any]) -> str:
    line = f"- {name}: {d['old']} -> {d['new']} (+{d['added']} / -{d['removed']})"
    if d["added_examples"]:
        line += f"; added: {', '.join(map(str, d['added_examples'][:5]))}"
    if d["removed_examples"]:
        line += f"; removed: {', '.join(map(str, d['removed_examples'][:5]))}"
    return line


def _largest_table(rows: list[Mapping[str, Any]]) -> list[str]:
    out = [
        "| query | model | task | old | new | change | adj. p | changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| `{r['query_id']}` | {r['model']} | {r['task']} | {_f(r['mean_old'])} | "
            f"{_f(r['mean_new'])} | {_f(r['delta'], '+.3f')} | {_f(r['p_adjusted'], '.3g')} | "
            f"{'**yes**' if r['changed'] else 'no'} |"
        )
    return out


def render_markdown(diff: Mapping[str, Any], *, title: str | None = None, level: int = 1) -> str:
    h = "#" * level
    old, new = diff["old"]["name"], diff["new"]["name"]
    lines = [f"{h} {title or f'Changes from {old} to {new}'}", ""]
    sp = diff["splits"]
    if sp["moved"]:
        lines += [
            f"> **WARNING: {sp['moved']} of {sp['queries']} queries in both versions moved "
            "between splits** "
            f"({', '.join(f'{k}: {v}' for k, v in sp['transitions'].items())}). Router "
            "results on the two versions are not comparable.",
            "",
        ]
    s = diff["shape"]
    lines += [f"{h}# Shape", ""]
    lines.append(_set_line("queries", s["queries"]))
    lines.append(_set_line("models", s["models"]))
    lines.append(_set_line("tasks", s["tasks"]))
    per_split = ", ".join(
        f"{k} {v['old']} -> {v['new']}" for k, v in s["splits"]["queries_per_split"].items()
    )
    lines.append(f"- queries per split: {per_split}")
    dv, cv = s["dataset_version"], s["contract_version"]
    lines.append(
        f"- dataset version: {dv['old']} -> {dv['new']}; contract: v{cv['old']} -> v{cv['new']}"
    )
    go, gn = s["generators"]["old"], s["generators"]["new"]
    lines.append(f"- package: dars {go['package_version']} -> {gn['package_version']}")
    for m in sorted(set(go["models"]) | set(gn["models"])):
        a, b = go["models"].get(m, {}), gn["models"].get(m, {})
        if a != b:
            lines.append(f"- generator `{m}`: {_gen(a)} -> {_gen(b)}")
    changed = s["params"]["changed"]
    lines.append(f"- params.yaml ({s['params']['source']}): {len(changed)} changed key(s)")
    for k, v in list(changed.items())[:15]:
        lines.append(f"  - `{k}`: `{v['old']}` -> `{v['new']}`")
    if len(changed) > 15:
        lines.append(f"  - ... and {len(changed) - 15} more (see the JSON)")

    lab = diff["labels"]
    lines += [
        "",
        f"{h}# Labels",
        "",
        f"{lab['pairs']} (query, model) pairs in both versions, {lab['tested']} tested "
        f"({', '.join(f'{k}: {v}' for k, v in lab['methods'].items())}). "
        f"**{lab['changed']} changed beyond sampling noise** ({_pct(lab['share'])}; "
        f"{lab['up']} up, {lab['down']} down) at a false discovery rate of {lab['fdr']:g} "
        "(Benjamini-Hochberg over all pairs).",
        "",
        "| model | pairs | tested | changed | share | mean change |",
        "|---|---|---|---|---|---|",
    ]
    for m, g in lab["by_model"].items():
        lines.append(
            f"| {m} | {g['pairs']} | {g['tested']} | {g['changed']} | {_pct(g['share'])} | "
            f"{_f(g['mean_delta'], '+.3f')} |"
        )
    lines += [
        "",
        "| task | pairs | tested | changed | share | mean change |",
        "|---|---|---|---|---|---|",
    ]
    for t, g in lab["by_task"].items():
        lines.append(
            f"| {t} | {g['pairs']} | {g['tested']} | {g['changed']} | {_pct(g['share'])} | "
            f"{_f(g['mean_delta'], '+.3f')} |"
        )
    if lab["largest"]:
        lines += ["", "Largest changes:", ""] + _largest_table(lab["largest"])

    dec = diff["decisions"]
    lines += [
        "",
        f"{h}# Decisions",
        "",
        f"The best model by utility (among {', '.join(dec['models_compared'])}) changed for "
        f"**{dec['changed']} of {dec['queries']} queries** ({_pct(dec['share'])}); "
        f"{dec['significant']} of these involve a significantly changed label.",
    ]
    for k, v in list(dec["transitions"].items())[:10]:
        lines.append(f"- {k}: {v}")

    lines += ["", f"{h}# Splits", ""]
    if sp["moved"]:
        lines.append(f"**{sp['warning']}.**")
        for r in sp["examples"][:10]:
            lines.append(f"- `{r['query_id']}`: {r['old']} -> {r['new']}")
    else:
        lines.append(f"No query moved between splits ({sp['queries']} queries in both).")

    lines += ["", f"{h}# Routers", ""]
    routers = diff["routers"]
    if routers is None:
        lines.append("Not compared: a version has no `routers/metrics.json`.")
    else:
        lines += [
            "Change new - old with an approximate 95% interval (independent versions).",
            "",
            "| system | metric | old | new | change | interval |",
            "|---|---|---|---|---|---|",
        ]
        for system, rows in routers["systems"].items():
            for metric, r in rows.items():
                if metric != "utility":
                    continue
                ci = (
                    f"[{_f(r['ci_low'], '+.3f')}, {_f(r['ci_high'], '+.3f')}]"
                    if "ci_low" in r
                    else "n/a"
                )
                lines.append(
                    f"| {system} | {metric} | {_f(r['old'])} | {_f(r['new'])} | "
                    f"{_f(r.get('delta'), '+.3f')} | {ci} |"
                )
        lines.append("")
        lines.append(
            "Utility only here; every headline metric (quality, cost, regret, apgr, nauc, "
            "verdict_flip) is in the JSON."
        )
    return "\n".join(lines) + "\n"


def _gen(entry: Mapping[str, Any]) -> str:
    if not entry:
        return "absent"
    return "; ".join(f"{k} {', '.join(v)}" for k, v in entry.items())


def json_safe(obj: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, so the JSON is strict."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------- card


def changes_since(
    previous: str, *, current: Version, repo: str | Path = ".", fdr: float = DEFAULT_FDR
) -> tuple[str, dict[str, Any]]:
    """The card's "Changes since <version>" section and the manifest's `previous` record."""
    prev = load_version(previous, repo=repo)
    diff = json_safe(diff_versions(prev, current, fdr=fdr))
    title = f"Changes since {prev.dataset_version or previous}"
    text = render_markdown(diff, title=title, level=2)
    record = {
        "spec": previous,
        "dataset_version": prev.dataset_version,
        "kind": prev.kind,
        "commit": prev.git_commit,
        "manifest_sha256": prev.manifest_sha256,
        "labels_changed": diff["labels"]["changed"],
        "splits_moved": diff["splits"]["moved"],
    }
    return text, record


def card_changes(
    *,
    params: ParamsSource,
    queries: Any,
    labels: Any,
    outcomes: Any,
    splits: Mapping[str, str],
    router_metrics: Mapping[str, Any] | None,
    contract_version: str,
    package_version: str,
) -> tuple[str, dict[str, Any]] | None:
    """For the card stage: (the "Changes since" Markdown, the manifest's `previous` record)
    when `card.previous` is set in params.yaml, else None. Tables are pyarrow tables."""
    previous = section(params, "card").previous
    if previous is None:
        return None
    current = build_version(
        queries=queries.select(["query_id", "task"]).to_pandas(),
        labels=labels.to_pandas(),
        splits=splits,
        outcomes=outcomes,
        params=params,
        router_metrics=router_metrics,
        contract_version=contract_version,
        package_version=package_version,
    )
    return changes_since(previous, current=current)


def build_version(
    *,
    queries: pd.DataFrame,
    labels: pd.DataFrame,
    splits: Mapping[str, str],
    outcomes: Any,
    params: ParamsSource,
    router_metrics: Mapping[str, Any] | None,
    contract_version: str,
    package_version: str,
) -> Version:
    """The version a card stage is building, from its in-memory tables."""
    from dars.versioning.sources import LABEL_COLUMNS, read_outcomes_table

    parsed = as_params(params)

    lab = labels.copy()
    for col in LABEL_COLUMNS:
        if col not in lab.columns:
            lab[col] = float("nan")
    scores, gens = read_outcomes_table(outcomes)
    return Version(
        spec="this build",
        kind="build",
        queries=queries[["query_id", "task"]],
        labels=lab[[*LABEL_COLUMNS, "task"]],
        splits=pd.DataFrame({"query_id": list(splits), "split": list(splits.values())}),
        scores=scores,
        generators=gens,
        params=dict(parsed.written),  # as the manifest records it (params_yaml)
        dataset_version=dataset_version(parsed) if parsed.has("dataset_version") else None,
        contract_version=contract_version,
        package_version=package_version,
        router_metrics=dict(router_metrics) if router_metrics is not None else None,
    )


# ---------------------------------------------------------------------------- command


def run(
    *,
    old: str,
    new: str,
    out: str | None = None,
    markdown: str | None = None,
    fdr: float = DEFAULT_FDR,
    repo: str = ".",
) -> dict[str, Any]:
    if not 0.0 < fdr < 1.0:
        from dars.core.errors import ParamsError

        raise ParamsError(f"--fdr {fdr!r} must be in (0, 1), e.g. 0.05")
    a = load_version(old, repo=repo)
    b = load_version(new, repo=repo)
    diff = json_safe(diff_versions(a, b, fdr=fdr))
    text = render_markdown(diff)
    if out:
        write_json(diff, out)
    if markdown:
        write_text(text, markdown)
    lab, sp, dec = diff["labels"], diff["splits"], diff["decisions"]
    if sp["moved"]:
        print(f"dars diff: WARNING: {sp['warning']}", file=sys.stderr)
    print(
        f"diff {a.name} -> {b.name}: {lab['changed']}/{lab['tested']} labels changed "
        f"(BH q={fdr:g}); best model changed for {dec['changed']}/{dec['queries']} queries "
        f"({dec['significant']} significant); {sp['moved']} "
        f"{'query' if sp['moved'] == 1 else 'queries'} moved between splits"
        + "".join(f"; -> {p}" for p in (out, markdown) if p)
    )
    if not (out or markdown):
        print(text)
    return diff
