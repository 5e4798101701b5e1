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


class AuthenticationError(DarsError):
    """A remote inference server rejected the API key (HTTP 401/403)."""


class MissingCredentialError(DarsError):
    """The environment variable named for an API key is not set."""


class ExecutorError(DarsError):
    """A distributed executor returned lost, duplicated or incomplete work."""


class CardRenderError(DarsError):
    """The dataset card template failed to render or rendered an invalid header."""


class EmptySplitError(DarsError):
    """A config/split of the publish layout would hold no rows."""


class PublishRefusedError(DarsError):
    """Base class of the reasons `dars publish` refuses to upload."""


class FailedValidationReportError(PublishRefusedError):
    """The validation report of the build says success: false."""


class StalePublishError(PublishRefusedError):
    """publish/ does not match what dvc.lock records (rerun `dvc repro card`)."""


class ManifestMismatchError(PublishRefusedError):
    """A file in publish/ does not match MANIFEST.json (edited, missing or extra)."""


class SimulatedBuildError(PublishRefusedError):
    """The build holds rows from the simulated backend, which is never published."""


class RepoIdMismatchError(PublishRefusedError):
    """--repo-id differs from the repo id the card was rendered for."""


class HubTagExistsError(PublishRefusedError):
    """The version tag already exists in the Hub repository."""


class HubTokenMissingError(DarsError):
    """No Hugging Face token in any of the usual huggingface_hub sources."""


class HubUploadError(DarsError):
    """The Hugging Face Hub rejected or failed a request."""


class UntrustedModelError(DarsError):
    """A saved router holds types outside the trusted set; it is not loaded."""


class RouterInterfaceError(DarsError):
    """A user router for `dars bench` breaks the interface (missing method, bad output)."""


class VersionNotFoundError(DarsError):
    """A dataset version given to `dars diff` (or `card.previous`) does not exist."""


class NotPublishLayoutError(DarsError):
    """A folder given as a dataset version is not a publish layout (`dars card` output)."""


class VersionUnreadableError(DarsError):
    """A dataset version exists but its data cannot be read (DVC cache/remote, network)."""


class ContractVersionMismatchError(DarsError):
    """Two dataset versions follow different data contract versions."""


class PredictionFileError(InputDataError):
    """A `dars bench --predictions` file that cannot be scored (names the line)."""
