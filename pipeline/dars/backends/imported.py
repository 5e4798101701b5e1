"""The `imported` backend: models whose rows `dars import` brought from another release
(the DARS release, RouterBench). There is no engine behind it; building one fails with
a line that says so."""

from __future__ import annotations

from typing import NoReturn

from dars.backends.base import BaseBackend, GenRequest, GenResult
from dars.core.errors import ParamsError
from dars.core.params import ModelConfig, ParamsSource


class ImportedBackend(BaseBackend):
    name = "imported"

    @classmethod
    def from_params(cls, config: ModelConfig, params: ParamsSource) -> NoReturn:
        raise ParamsError(
            f"Model {config.name!r} was imported by `dars import` (backend 'imported'): its "
            "rows come from another release and there is no engine to sample it with"
        )

    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        raise NotImplementedError("an imported model has no engine")  # never built

    def close(self) -> None:
        return None
