"""dars.tasks: the registry and its built-in plugins (types in `dars.tasks.base`)."""

from __future__ import annotations

# Register the built-in loaders (each module registers itself on import).
from dars.tasks import arithmetic, drop, gpqa, huggingface, humaneval, math  # noqa: E402, F401
from dars.tasks.base import (  # noqa: F401
    TASK_LOADERS,
    Candidate,
    Loader,
    Rejection,
    check_keys,
    int_param,
    str_param,
)
