"""Any Hugging Face dataset (kind `huggingface`) through `datasets.load_dataset`.

Settings (under `prepare.tasks.<task>`):
- `path` (required): a Hub id (`openai/gsm8k`) or a packaged builder (`json`, `csv`, ...);
- `name` (config, default null), `split` (default `train`), `data_files` (default null),
  `revision` (default null), `cache_dir` (default null = the datasets cache);
- `fields` (required): `{id: <column or null>, prompt: <column>, reference: <column>}`;
  with `id: null` the source id is `<split>-<row index>`;
- `reference_regex` (default null): take the reference out of its column, group 1 if the
  pattern has a group, else the whole match (GSM8K: `"####\\s*(.+)$"`);
- `grader` (required), `license` (default `unknown`), `n` (first n rows; null = all);
- `source` (default `path`, or `path/name`): the provenance name hashed into query ids.
  Required for packaged builders, whose `path` (`json`) does not name the data.

Rows whose mapped field is missing, or whose reference does not match the regex, are
yielded with a rejection (reason + field) so they are quarantined.

With `path: json` the local files are read row by row by Python (`dars.tasks.files`), not
by Arrow's per-column type inference: one list-valued answer or one lone surrogate costs
its own row only (`wrong_type`, `invalid_utf8`), and a line that is not JSON is
quarantined as `invalid_json`. Numeric references become their text (`42` -> `"42"`); a
list of strings is kept as a JSON list only for the graders that take alternatives
(`exact`, `f1`).

Example (GSM8K):

    gsm8k:
      kind: huggingface
      path: openai/gsm8k
      name: main
      split: test
      fields: {id: null, prompt: question, reference: answer}
      reference_regex: "####\\s*(.+)$"
      grader: numeric
      license: MIT
      n: 200
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from dars.core.errors import InputDataError, ParamsError
from dars.tasks import files
from dars.tasks.base import TASK_LOADERS, Candidate, Rejection, check_keys, int_param, str_param

KEYS = (
    "kind",
    "path",
    "name",
    "split",
    "data_files",
    "revision",
    "cache_dir",
    "fields",
    "reference_regex",
    "grader",
    "license",
    "n",
    "source",
)
FIELD_ROLES = ("id", "prompt", "reference")
PACKAGED_BUILDERS = ("json", "csv", "parquet", "text", "arrow", "pandas", "webdataset")
LIST_GRADERS = ("exact", "f1")  # graders whose reference may be a JSON list of answers


def field_mapping(config: Mapping[str, Any], *, key: str) -> dict[str, str | None]:
    fields = config.get("fields")
    if not isinstance(fields, Mapping):
        raise ParamsError(
            f"Parameters '{key}.fields' are missing or not a mapping; give "
            "{id: <column or null>, prompt: <column>, reference: <column>}"
        )
    check_keys(
        {"kind": "huggingface", **fields}, allowed=("kind", *FIELD_ROLES), key=f"{key}.fields"
    )
    mapping: dict[str, str | None] = {"id": None}
    for role in FIELD_ROLES:
        value = fields.get(role)
        if value is None and role == "id":
            continue
        if not isinstance(value, str) or not value:
            raise ParamsError(f"Parameter '{key}.fields.{role}' = {value!r} must name a column")
        mapping[role] = value
    return mapping


def compile_regex(pattern: str | None, *, key: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ParamsError(
            f"Parameter '{key}.reference_regex' = {pattern!r} is not a valid "
            f"regular expression: {exc}"
        ) from exc


def extract(text: str, regex: re.Pattern[str] | None) -> str | None:
    """The reference out of `text`: group 1 if the regex has a group, else the match."""
    if regex is None:
        return text
    match = regex.search(text)
    if match is None:
        return None
    return (match.group(1) if regex.groups else match.group(0)).strip()


def default_source(*, path: str, name: str | None, key: str) -> str:
    if path in PACKAGED_BUILDERS:
        raise ParamsError(
            f"Parameters '{key}.source' are missing: with the packaged builder "
            f"path {path!r} give a source name (e.g. 'myorg/mydata'); it is "
            "hashed into the query ids"
        )
    return f"{path}/{name}" if name else path


def load_split(
    *,
    path: str,
    name: str | None,
    split: str,
    data_files: Any,
    revision: str | None,
    cache_dir: str | None,
    key: str,
) -> Any:
    return files.load_hub(
        path=path,
        name=name,
        split=split,
        data_files=data_files,
        revision=revision,
        cache_dir=cache_dir,
        key=key,
    )


def reference_value(value: Any, *, grader: str) -> tuple[Any, Rejection | None]:
    """The reference as text: numbers become their decimal text; a list of strings becomes
    a JSON list for the graders that take alternatives (`exact`, `f1`); any other list
    or mapping is quarantined as `wrong_type` (one such row never decides the others)."""
    if isinstance(value, bool):
        return value, Rejection(reason="wrong_type", field="reference")
    if isinstance(value, int | float):
        return str(value), None
    if isinstance(value, list | tuple):
        if grader in LIST_GRADERS and value and all(isinstance(v, str) for v in value):
            return json.dumps(list(value), ensure_ascii=False), None
        return value, Rejection(reason="wrong_type", field="reference")
    if isinstance(value, Mapping):
        return value, Rejection(reason="wrong_type", field="reference")
    return value, None


def to_candidate(
    *,
    record: Mapping[str, Any],
    row_index: int,
    split: str,
    mapping: Mapping[str, str | None],
    regex: re.Pattern[str] | None,
    grader: str,
    source: str,
    license: str,
    metadata: Mapping[str, Any],
) -> Candidate:
    bad = files.unreadable(
        record, row_index=row_index, grader=grader, source=source, license=license
    )
    if bad is not None:
        return bad
    reject: Rejection | None = None
    id_col = mapping["id"]
    source_id: Any = f"{split}-{row_index}" if id_col is None else record.get(id_col)
    if source_id is None or source_id == "":
        reject = Rejection(reason="missing_field", field="id")
    prompt = record.get(str(mapping["prompt"]))
    reference = record.get(str(mapping["reference"]))
    for role, value in (("prompt", prompt), ("reference", reference)):
        if reject is None and value is None:
            reject = Rejection(reason="missing_field", field=role)
    if reject is None:
        reference, reject = reference_value(reference, grader=grader)
    if reject is None and regex is not None:
        if not isinstance(reference, str):
            reject = Rejection(reason="wrong_type", field="reference")
        else:
            reference = extract(reference, regex)
            if reference is None:
                reject = Rejection(reason="regex_no_match", field="reference")
    return Candidate(
        row_index=row_index,
        source_id=source_id,
        prompt=prompt,
        reference=reference,
        grader=grader,
        source=source,
        license=license,
        metadata={**metadata, "row": row_index, "source_id": source_id},
        reject=reject,
        raw=dict(record),
    )


@TASK_LOADERS.register("huggingface")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    check_keys(config, allowed=KEYS, key=key)
    path = str_param(config, "path", key=key)
    name = str_param(config, "name", key=key, default=None, allow_none=True)
    split = str_param(config, "split", key=key, default="train")
    revision = str_param(config, "revision", key=key, default=None, allow_none=True)
    cache_dir = str_param(config, "cache_dir", key=key, default=None, allow_none=True)
    grader = str_param(config, "grader", key=key)
    license = str_param(config, "license", key=key, default="unknown")
    n = int_param(config, "n", key=key, default=None, lo=1, allow_none=True)
    mapping = field_mapping(config, key=key)
    regex = compile_regex(
        str_param(config, "reference_regex", key=key, default=None, allow_none=True), key=key
    )
    assert path is not None and split is not None and grader is not None
    source = str_param(config, "source", key=key, default=None, allow_none=True) or default_source(
        path=path, name=name, key=key
    )
    data_files = config.get("data_files")

    if path == "json":
        # Local JSON: read row by row in Python (see dars.tasks.files), never by Arrow's
        # per-column type inference, so one odd row cannot decide every row's fate.
        if data_files is None:
            raise ParamsError(
                f"Parameters '{key}.data_files' are missing (needed with path 'json')"
            )
        if not isinstance(data_files, Mapping) and split != "train":
            # as `datasets` does: files not mapped to splits make up the split 'train'
            raise InputDataError(
                f"Task '{key}' asks for split {split!r}, but its data_files are not a mapping "
                "split -> file(s), so they hold the split 'train' only"
            )
        rows: Any = [
            r
            for f in files.file_list(data_files, split=split, key=key)
            for r in files.json_records(f)
        ]
        columns = sorted({c for r in rows if isinstance(r, Mapping) for c in r})
    else:
        rows = load_split(
            path=path,
            name=name,
            split=split,
            data_files=data_files,
            revision=revision,
            cache_dir=cache_dir,
            key=key,
        )
        columns = list(rows.column_names)
    absent = [
        f"{role}={col!r}" for role, col in mapping.items() if col is not None and col not in columns
    ]
    if absent:
        raise ParamsError(
            f"Parameter '{key}.fields' maps {', '.join(absent)}, but dataset "
            f"{path!r} has columns {columns}"
        )
    if n is not None:
        rows = (
            rows[: min(n, len(rows))]
            if isinstance(rows, list)
            else rows.select(range(min(n, len(rows))))
        )
    metadata = {"dataset": path, "name": name, "split": split, "revision": revision}
    return (
        to_candidate(
            record=record,
            row_index=row_index,
            split=split,
            mapping=mapping,
            regex=regex,
            grader=grader,
            source=source,
            license=str(license),
            metadata=metadata,
        )
        for row_index, record in enumerate(rows)
    )
