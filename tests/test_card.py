"""The `card` stage: a tiny real `dvc repro` (simulated backend) writes publish/, and every
config and split loads back with `datasets.load_dataset(folder, config, split=...)`."""

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml
from huggingface_hub import DatasetCard

import dars
from dars.core import schema
from dars.core.errors import CardRenderError, EmptySplitError, ManifestMismatchError, ParamsError
from dars.core.skops_io import skops_io
from dars.publishing import card as publish_card
from dars.publishing.hub import verify_manifest
from dars.publishing.manifest import lock_digest
from dars.publishing.routers import within_budget
from dars.stages import card
from tests.factories import Built, tiny_params

sio = skops_io()  # skops.io, without torch (as the stages import it)

pytestmark = [pytest.mark.dvc]


@pytest.fixture
def built(sim_built: Built) -> Built:
    return sim_built


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_tables(root: Path, models: list[str]) -> dict[str, pd.DataFrame]:
    d = root / "data"
    return {
        "queries": pd.read_parquet(d / "queries.parquet"),
        "variants": pd.read_parquet(d / "variants.parquet"),
        "labels": pd.read_parquet(d / "labels.parquet"),
        "outcomes": pd.concat(pd.read_parquet(d / "outcomes" / f"{m}.parquet") for m in models),
        "generations": pd.concat(
            pd.read_parquet(d / "generations" / f"{m}.parquet") for m in models
        ),
    }


def test_every_config_and_split_loads_back_with_datasets(built, tmp_path):
    import datasets

    root = built.root
    models = list(built.params()["models"])
    splits = pd.read_parquet(root / "data" / "splits.parquet").set_index("query_id")["split"]
    tables = expected_tables(root, models)
    for config in publish_card.CONFIGS:
        total = 0
        for split in schema.SPLITS:
            ds = datasets.load_dataset(
                str(root / "publish"), config, split=split, cache_dir=str(tmp_path / "hf")
            )
            src = tables[config]
            want = src[src["query_id"].map(splits) == split]
            assert ds.num_rows == len(want) > 0, (config, split)
            assert set(schema.names(publish_card.CONTRACT[config])) <= set(ds.column_names)
            assert sorted(ds["query_id"]) == sorted(want["query_id"])
            total += ds.num_rows
        assert total == len(tables[config]), config
    # labels keep their values and nulls (failed generations are never filled in)
    lab = datasets.load_dataset(
        str(root / "publish"), "labels", split="test", cache_dir=str(tmp_path / "hf")
    ).to_pandas()
    src = tables["labels"].set_index(["query_id", "model"])
    got = lab.set_index(["query_id", "model"])
    cols = ("mean", "std", "ci_low", "ci_high", "ci_low_fixed", "ci_high_fixed")
    for col in (*cols, "single_shot", "utility", "true_p"):
        assert np.allclose(got[col], src.loc[got.index, col], equal_nan=True), col


def test_manifest_checksums_and_provenance(built, tmp_path):
    pub = built.root / "publish"
    manifest = verify_manifest(pub)
    files = {p.relative_to(pub).as_posix() for p in pub.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"MANIFEST.json"}
    for rel, meta in manifest["files"].items():
        assert meta["sha256"] == sha256(pub / rel) and meta["size"] == (pub / rel).stat().st_size
    params = built.params()
    assert manifest["params_yaml"] == (built.root / "params.yaml").read_text()
    assert manifest["dataset_version"] == params["dataset_version"]
    assert manifest["package_version"] == dars.__version__
    lock = yaml.safe_load((built.root / "dvc.lock").read_text())
    recorded = {k: v["dvc_lock_md5"] for k, v in manifest["inputs"].items()}
    assert manifest["dvc_lock"]["inputs_sha256"] == lock_digest(recorded)
    assert lock_digest({**recorded, "data/labels.parquet": "0" * 32}) != lock_digest(recorded)
    labels_md5 = next(
        o["md5"] for o in lock["stages"]["aggregate"]["outs"] if o["path"] == "data/labels.parquet"
    )
    assert manifest["inputs"]["data/labels.parquet"] == {
        "md5": labels_md5,
        "dvc_lock_md5": labels_md5,
    }
    for m in params["models"]:
        assert f"data/outcomes/{m}.parquet" in manifest["inputs"]
    assert "data/variants.parquet" in manifest["inputs"]
    # the utility weights labels, train, evaluate and `dars bench` use
    assert manifest["utility"] == {
        "lambda_cost": params["aggregate"]["lambda_cost"],
        "beta_risk": params["aggregate"]["beta_risk"],
    }

    # a consumer's check catches an edited, a missing and an unlisted file
    copy = tmp_path / "pub"
    shutil.copytree(pub, copy)
    shard = "labels/test-00000-of-00001.parquet"
    (copy / shard).write_bytes(b"not parquet")
    (copy / "routers" / "ridge-dars.skops").unlink()
    (copy / "extra.txt").write_text("x")
    with pytest.raises(ManifestMismatchError) as exc:
        verify_manifest(copy)
    msg = str(exc.value)
    assert f"{shard}: sha256 differs" in msg
    assert "routers/ridge-dars.skops: missing" in msg
    assert "extra.txt: not listed" in msg


def test_card_header_and_numbers_come_from_the_build(built):
    root = built.root
    text = (root / "publish" / "README.md").read_text()
    data = DatasetCard(text).data.to_dict()
    params = built.params()
    assert data["license"] == params["card"]["license"]
    assert data["pretty_name"] == params["card"]["pretty_name"]
    assert data["task_categories"] == params["card"]["task_categories"]
    assert data["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c for c in data["configs"]}
    assert set(configs) == set(publish_card.CONFIGS)
    assert configs["labels"]["data_files"] == [
        {"split": s, "path": f"labels/{s}-*.parquet"} for s in schema.SPLITS
    ]
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    lab = pd.read_parquet(root / "data" / "labels.parquet")
    assert sum(s["num_examples"] for s in infos["labels"]["splits"]) == len(lab)
    assert {f["name"] for f in infos["labels"]["features"]} >= set(schema.names(schema.LABELS))

    assert f"(v{params['dataset_version']})" in text
    assert "SIMULATED BUILD" in text  # a simulated build says so
    assert f"**{lab['query_id'].nunique()} queries**" in text
    for model, g in lab.groupby("model"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {model} | {len(g)} |"))
        assert f"| {g['mean'].mean():.3f} |" in row and f"| {g['utility'].mean():.3f} |" in row
    q = pd.read_parquet(root / "data" / "queries.parquet")
    for (task, source, lic), g in q.groupby(["task", "source", "license"]):
        assert f"| {task} | {source} | {lic} | {len(g)} |" in text
    assert "| openai/human-eval | MIT |" in text
    report = json.loads((root / "reports" / "validation.json").read_text())
    assert "**passed**" in text and report["success"] is True
    # the short router table: DARS utility, single-shot (none here), the difference and p
    assert "| ridge | 0.410 [0.300, 0.500] | n/a | +0.020 [-0.010, +0.050] | 0.300 |" in text
    assert "n_test_queries = 2" in text
    for metric in ("**apgr**", "**nauc**", "**verdict_flip**", "**regret**"):
        assert metric in text  # every metric is defined
    assert "Lai, Guannan" in text and "2606.06924" in text  # the citation names the authors
    assert configs["labels"].get("default") is True  # load_dataset(repo) loads the labels
    assert "{{" not in text and "{%" not in text


def test_routers_are_copied_with_metrics(built):
    root = built.root
    published = sorted(p.name for p in (root / "publish" / "routers").glob("*.skops"))
    # the DARS-supervised router and single-shot repeat 0; the other repeats stay in models/
    assert published == ["knn-single_shot-r0.skops", "ridge-dars.skops"]
    for name in published:
        f = root / "models" / name
        pub = root / "publish" / "routers" / f.name
        assert sha256(pub) == sha256(f)
        model = sio.load(pub, trusted=sio.get_untrusted_types(file=pub))
        assert model.predict(np.zeros((1, 2))).shape == (1,)

    def strict(name):
        raise ValueError(f"{name} is not strict JSON")

    got = json.loads(
        (root / "publish" / "routers" / "metrics.json").read_text(), parse_constant=strict
    )
    src = json.loads((root / "metrics" / "routers.json").read_text())
    assert got["routers"]["ridge"]["dars"]["apgr"]["value"] is None  # NaN -> null
    src["routers"]["ridge"]["dars"]["apgr"]["value"] = None
    assert got == src


def _card_kwargs(root: Path, **over) -> dict:
    kw = dict(
        params_path=str(root / "params.yaml"),
        template=str(root / "dataset_card.md"),
        queries=str(root / "data/queries.parquet"),
        labels=str(root / "data/labels.parquet"),
        splits=str(root / "data/splits.parquet"),
        variants=str(root / "data/variants.parquet"),
        generations_dir=str(root / "data/generations"),
        outcomes_dir=str(root / "data/outcomes"),
        validation=str(root / "reports/validation.json"),
        models_dir=str(root / "models"),
        router_metrics=str(root / "metrics/routers.json"),
        lock=str(root / "dvc.lock"),
        out=str(root / "out-publish"),
    )
    return {**kw, **over}


def test_a_card_that_fails_to_render_fails_the_stage(built, tmp_path, capsys):
    from dars import cli

    bad = tmp_path / "dataset_card.md"
    bad.write_text((built.root / "dataset_card.md").read_text() + "\n{{ n_querys }}\n")
    kw = _card_kwargs(built.root, template=str(bad), out=str(tmp_path / "publish"))
    with pytest.raises(CardRenderError, match="n_querys"):
        card.run(**kw)
    assert not (tmp_path / "publish").exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == ["dataset_card.md"]
    # through the CLI (what the DVC stage runs): exit status 1 and the reason
    argv = ["card", "--params", kw["params_path"], "--template", str(bad)]
    for flag, key in [
        ("--queries", "queries"),
        ("--labels", "labels"),
        ("--splits", "splits"),
        ("--variants", "variants"),
        ("--generations", "generations_dir"),
        ("--outcomes", "outcomes_dir"),
        ("--validation", "validation"),
        ("--models-dir", "models_dir"),
        ("--router-metrics", "router_metrics"),
        ("--lock", "lock"),
        ("--out", "out"),
    ]:
        argv += [flag, kw[key]]
    assert cli.main(argv) == 1
    assert "n_querys" in capsys.readouterr().err

    headless = tmp_path / "headless.md"
    headless.write_text("# no header\n{{ n_queries }}\n")
    with pytest.raises(CardRenderError, match="configs"):
        card.run(**_card_kwargs(built.root, template=str(headless), out=str(tmp_path / "p2")))


def test_a_config_with_no_rows_in_a_split_that_has_queries_fails_with_the_counts(built, tmp_path):
    """A split no query is assigned to is left out (see the variants test below); a split
    that has queries but no rows in one config would be an empty Parquet split: refused."""
    splits = pd.read_parquet(built.root / "data" / "splits.parquet")
    held = set(splits.loc[splits["split"] == "validation", "query_id"])
    labels = pd.read_parquet(built.root / "data" / "labels.parquet")
    path = tmp_path / "labels.parquet"
    labels[~labels["query_id"].isin(held)].to_parquet(path)
    with pytest.raises(EmptySplitError, match="split 'validation' of config 'labels'"):
        card.run(**_card_kwargs(built.root, labels=str(path), out=str(tmp_path / "p")))


def test_card_params_are_checked():
    p = tiny_params()
    p["card"]["repo_id"] = "no-slash"
    with pytest.raises(ParamsError, match="card.repo_id.*ORG/NAME"):
        publish_card.card_settings(p)
    p = tiny_params()
    p["dataset_version"] = "1.0 beta"
    with pytest.raises(ParamsError, match="dataset_version"):
        publish_card.card_settings(p)


def test_variants_config_and_a_split_without_queries_is_left_out(built, tmp_path):
    """The DARS preset has no validation split: the card publishes train and test only,
    and the `variants` config holds every rewrite (rejected ones too) by query split."""
    import datasets

    b = built.copy(tmp_path / "repo")
    splits = pd.read_parquet(b.root / "data" / "splits.parquet")
    splits["split"] = splits["split"].replace({"validation": "test"})
    splits.to_parquet(b.root / "data" / "splits.parquet", index=False)
    variants = pd.read_parquet(b.root / "data" / "variants.parquet")
    rejected = variants.iloc[[0]].assign(
        variant_id=99, accepted=False, reject_reason="numbers: 7 missing", method="llm:x"
    )
    pd.concat([variants, rejected]).to_parquet(b.root / "data" / "variants.parquet", index=False)
    p = b.params()
    p["aggregate"]["beta_risk"] = {"arithmetic": 0.1, "humaneval": 0.3}
    b.write_params(p)
    out = tmp_path / "publish"
    card.run(**_card_kwargs(b.root, out=str(out)))
    assert not (out / "labels" / "validation.parquet").exists()
    data = DatasetCard((out / "README.md").read_text()).data.to_dict()
    configs = {c["config_name"]: c for c in data["configs"]}
    assert [f["split"] for f in configs["variants"]["data_files"]] == ["train", "test"]
    split_of = splits.set_index("query_id")["split"]
    total = 0
    for split in ("train", "test"):
        ds = datasets.load_dataset(
            str(out), "variants", split=split, cache_dir=str(tmp_path / "hf")
        ).to_pandas()
        assert set(ds.columns) >= set(schema.names(schema.VARIANTS))
        assert (ds["query_id"].map(split_of) == split).all()
        total += len(ds)
    assert total == len(variants) + 1
    got = datasets.load_dataset(
        str(out),
        "variants",
        split=split_of[rejected["query_id"].iloc[0]],
        cache_dir=str(tmp_path / "hf"),
    ).to_pandas()
    row = got[got["variant_id"] == 99].iloc[0]
    assert not row["accepted"] and row["reject_reason"] == "numbers: 7 missing"
    text = (out / "README.md").read_text()
    assert "β = arithmetic 0.1, humaneval 0.3" in text
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["utility"]["beta_risk"] == {"arithmetic": 0.1, "humaneval": 0.3}


def test_routers_fit_in_their_share_of_the_bytes_best_first(tmp_path):
    sizes = {"a-dars.skops": 300, "b-dars.skops": 200, "a-single_shot-r0.skops": 100}
    files = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
        files.append(tmp_path / name)
    metrics = {
        "routers": {
            "a": {"dars": {"utility": {"value": 0.5}}, "single_shot": {"utility": {"value": 0.4}}},
            "b": {"dars": {"utility": {"value": 0.3}}},
        }
    }
    # 20% of data + routers: at most 250 router bytes for 1000 data bytes
    kept, left = within_budget(files, data_bytes=1000, share=0.2, metrics=metrics)
    assert [f.name for f in kept] == ["b-dars.skops"]  # a-dars (300) does not fit
    assert sorted(f.name for f in left) == ["a-dars.skops", "a-single_shot-r0.skops"]
    # the best DARS router first, then the next DARS one; a's r0 no longer fits in 500
    kept, left = within_budget(files, data_bytes=2000, share=0.2, metrics=metrics)
    assert [f.name for f in kept] == ["a-dars.skops", "b-dars.skops"]
    assert [f.name for f in left] == ["a-single_shot-r0.skops"]
    kept, left = within_budget(files, data_bytes=10, share=1.0, metrics=metrics)
    assert len(kept) == 3 and not left


def test_load_dataset_without_a_config_loads_the_labels(built):
    ds = datasets.load_dataset(str(built.root / "publish"), split="test")
    assert {"query_id", "model", "mean", "std", "ci_low", "ci_high"} <= set(ds.column_names)
