"""`skops.io`, imported without importing torch.

At import, skops lists scikit-learn's estimators (its default trusted types) with
`sklearn.utils.all_estimators`. That function walks scikit-learn's packages with
`pkgutil.walk_packages`, which imports every package it walks into, including
`sklearn.externals.array_api_compat.torch`, and that module imports torch whenever torch is
installed (it is, for the `embed` extra): about 1.5 s of every `dars train`, `evaluate`,
`card` and `bench` process, for a package whose classes `all_estimators` then drops
(it ignores `externals`). `skops_io()` marks that one module as missing while skops is
imported, so the walk skips it (`walk_packages` passes over a package that fails to
import), and removes the mark afterwards, so a later real use of it imports it as usual.
skops's trusted-type lists come out the same (tests/test_routers.py checks it).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

#: the scikit-learn module whose import pulls in torch during skops's estimator walk
TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


def skops_io() -> ModuleType:
    """The `skops.io` module (imported once per process, as any module)."""
    if "skops.io" in sys.modules or TORCH_SHIM in sys.modules:
        return importlib.import_module("skops.io")
    sys.modules[TORCH_SHIM] = None  # type: ignore[assignment]  # "missing" (importlib's rule)
    try:
        return importlib.import_module("skops.io")
    except ImportError:  # a scikit-learn whose walk no longer skips it: import it plainly
        sys.modules.pop(TORCH_SHIM, None)
        for name in [m for m in sys.modules if m == "skops" or m.startswith("skops.")]:
            del sys.modules[name]
        return importlib.import_module("skops.io")
    finally:
        if sys.modules.get(TORCH_SHIM, ...) is None:
            del sys.modules[TORCH_SHIM]
