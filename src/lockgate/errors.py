"""lockgate's exception tree.

Every error users see carries a stable ``code`` that the CLI prints and the REST API
returns as ``{"error": {"code", "message", "details"}}``, and its HTTP status and exit code
as class attributes (``http_status``, ``exit_code``)::

    LockgateError                      internal
    ├── DefinitionError                invalid_definition   a pipeline or step is malformed
    │   └── SpecError                                       a pipeline or channel file: every
    │                                                        problem, with file, line, column
    ├── SettingsError                  invalid_settings     a setting cannot be used as given
    ├── ParamsError                    invalid_params       run params refused (all problems)
    ├── NotFound                       not_found
    │   ├── PipelineNotFound
    │   ├── RunNotFound
    │   └── ChannelNotFound            (a channel, stage or manifest)
    ├── TooLarge                       too_large            a body or content over its limit
    ├── RateLimited                    rate_limited         too many attempts: wait, try again
    ├── Unauthorized                   unauthorized         no valid token
    ├── BadSignature                   bad_signature        a webhook not signed by its secret
    ├── BadPayload                     bad_payload          a webhook body not what it should be
    ├── Forbidden                      forbidden            not allowed for this person
    ├── Conflict                       conflict
    │   ├── InvalidState               invalid_state        not allowed in the current status
    │   └── StaleLease                 stale_lease          a fenced write from a stale worker
    │       └── LeaseExpired           lease_expired        a step not started: lease ran out
    ├── StepError                      step_failed          raised while a step runs
    │   ├── MissingOutput
    │   ├── StepTimeout                step_timeout
    │   ├── StepInterrupted            step_interrupted     non-idempotent step found in flight
    │   ├── StepCancelled              step_cancelled
    │   ├── Refused                                         the SSRF guard refused a URL
    │   └── NothingToUndo              nothing_to_undo      a rollback skipped: no output
    └── StoreError                     store_error          the database failed or is unreachable
        ├── SchemaMissing              schema_missing       not migrated: lockgate db upgrade
        ├── DatabaseMissing            no_database          no database file where it points
        └── DatabaseUnavailable        database_unavailable unreachable, restarting, cut off

``Parked`` is not an error: a ``BaseException`` the engine catches when a step sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class LockgateError(Exception):
    """Base of every error lockgate raises on purpose.

    Each class carries its stable ``code``, the HTTP status the API answers with and the
    exit code of the CLI: the one table every face reads.
    """

    code = "internal"
    http_status = 500
    exit_code = 1
    #: Every error class by its code (a REST client raises the class the server named).
    by_code: ClassVar[dict[str, type[LockgateError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LockgateError.by_code.setdefault(cls.code, cls)

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as the API and ``--output json`` show it."""
        return {"code": self.code, "message": self.message, "details": self.details}


class DefinitionError(LockgateError):
    """A pipeline or step definition is invalid."""

    code = "invalid_definition"
    http_status = 422
    exit_code = 2


class SpecError(DefinitionError):
    """A pipeline or channel file was refused; ``problems`` lists every problem found
    (each with its file, line, column and message; ``str()`` of each is one line)."""

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = list(problems)
        super().__init__(
            "\n".join(str(p) for p in self.problems),
            details={"problems": [str(p) for p in self.problems]},
        )


class SettingsError(LockgateError):
    """A setting is unusable (a secret too short to mask, ...)."""

    code = "invalid_settings"
    http_status = 422
    exit_code = 2


class ParamsError(LockgateError):
    """Run parameters were refused; ``problems`` lists every one of them."""

    code = "invalid_params"
    http_status = 422
    exit_code = 2

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid params: " + "; ".join(self.problems), details={"problems": self.problems}
        )


class NotFound(LockgateError):
    """An id or name does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 3


class PipelineNotFound(NotFound):
    """No pipeline is registered under that name."""


class RunNotFound(NotFound):
    """No run has that id."""


class ChannelNotFound(NotFound):
    """No channel (or stage, or manifest) by that name."""


class TooLarge(LockgateError):
    """A request or its content is over the size limit."""

    code = "too_large"
    http_status = 413
    exit_code = 1


class RateLimited(LockgateError):
    """Too many attempts from one address (unauthenticated sign-ins): answered 429 with
    ``Retry-After`` (``details["retry_after"]``, seconds)."""

    code = "rate_limited"
    http_status = 429
    exit_code = 1


class Unauthorized(LockgateError):
    """No credentials, or credentials that are not valid."""

    code = "unauthorized"
    http_status = 401
    exit_code = 5


class BadSignature(LockgateError):
    """A webhook request is not signed by its trigger's secret (answered 401)."""

    code = "bad_signature"
    http_status = 401


class BadPayload(LockgateError):
    """A webhook body is not what its provider sends (answered 400)."""

    code = "bad_payload"
    http_status = 400


class Forbidden(LockgateError):
    """The caller may not do this (not an approver, self-approval, missing role)."""

    code = "forbidden"
    http_status = 403
    exit_code = 5


class Conflict(LockgateError):
    """The operation conflicts with the current state."""

    code = "conflict"
    http_status = 409
    exit_code = 4


class InvalidState(Conflict):
    """The operation is not allowed in the object's current status."""

    code = "invalid_state"


class StaleLease(Conflict):
    """A worker wrote with a lease token that another worker has since replaced."""

    code = "stale_lease"


class LeaseExpired(StaleLease):
    """A worker held up past its lease (a pause, a freeze) did not start a step: another
    worker may hold the run by now."""

    code = "lease_expired"


class StepError(LockgateError):
    """A step failed for a reason lockgate itself detected."""

    code = "step_failed"


class MissingOutput(StepError):
    """A step that declares an output type returned ``None``."""


class StepTimeout(StepError):
    """A step ran past its timeout."""

    code = "step_timeout"


class StepInterrupted(StepError):
    """A step marked ``idempotent=False`` was in flight when its worker died."""

    code = "step_interrupted"


class StepCancelled(StepError):
    """The run was cancelled while the step ran."""

    code = "step_cancelled"


class Refused(StepError):
    """The SSRF guard refused the URL an ``api`` step (or a ``check``) would call."""


class NothingToUndo(StepError):
    """A rollback needs its step's output, and the step failed before it made one."""

    code = "nothing_to_undo"
    http_status = 409
    exit_code = 1


class Parked(BaseException):
    """Raised by ``ctx.sleep`` to park the run until ``until``; the engine catches it.

    A ``BaseException`` so that a step's ``except Exception`` does not swallow it.
    """

    def __init__(self, until: float | None) -> None:
        super().__init__(f"parked until {until or 'woken'}")
        #: ``None``: until something (a decision) wakes the run.
        self.until = until


class StoreError(LockgateError):
    """The database refused or failed an operation."""

    code = "store_error"
    http_status = 503
    exit_code = 1


class SchemaMissing(StoreError):
    """The database has no lockgate schema, or an older one: ``lockgate db upgrade``."""

    code = "schema_missing"


class DatabaseMissing(StoreError):
    """There is no database where the settings point (a SQLite file that does not exist)."""

    code = "no_database"


class DatabaseUnavailable(StoreError):
    """The database could not be reached, or dropped the connection (a restart, a network
    fault). A write that failed so may or may not have committed: read before acting."""

    code = "database_unavailable"
