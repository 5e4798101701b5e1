"""One exception class per failure, so callers and tests can tell them apart."""

from __future__ import annotations


class DarsError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ParamsError(DarsError):
    """A value in params.yaml is missing or invalid."""


class InputDataError(DarsError):
    """An input table or source file is malformed."""


class QuarantineThresholdError(DarsError):
    """Too large a share of source rows was quarantined."""


class UnknownNameError(DarsError):
    """A registry lookup (grader, backend, task, router) failed."""


class MissingExtraError(DarsError):
    """An optional dependency is not installed."""


class BackendError(DarsError):
    """An inference engine failed in a way that is recorded, not raised, per sample."""


class ValidationFailedError(DarsError):
    """A Great Expectations suite failed."""


class ErrorRateExceededError(DarsError):
    """Too many generations failed for the labels to be trusted."""


class DarsWarning(UserWarning):
    """Warnings raised by this project (pytest turns them into errors)."""
