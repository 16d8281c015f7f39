"""Who may see and act on jobs.

* Operators: the job routes (``GET /jobs``..., ``GET /schedules``) and a service's
  routes that hold workers depend on :func:`require_operator`, which wants
  ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``. A missing or wrong token gets 401. With
  JOBS_ADMIN_TOKEN unset or empty every request is refused (401), and the log says why:
  the routes never open up by accident.
* A client that enqueued a job reads that job, and no other, at the status URL the
  enqueue answered (:func:`status_url`): ``/jobs/{job_id}/status?key=...``, where the key
  is a signature of the job id made with a key derived from JOBS_ADMIN_TOKEN. A guessed,
  altered or swapped URL gets the 404 of an unknown job. A new token voids every status
  URL handed out before.

Your own auth instead of the token: replace :func:`require_operator` in the service's
``main.py`` with ``app.dependency_overrides[require_operator] = your_dependency``. Every
operator route goes through it, so that is the one place.
"""

import hashlib
import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..settings import current

logger = logging.getLogger(__name__)

#: The bearer scheme, so that Swagger UI (/docs) offers "Authorize" for the token.
operator_token = HTTPBearer(
    auto_error=False,
    scheme_name="JOBS_ADMIN_TOKEN",
    description="The operators' token: JOBS_ADMIN_TOKEN of the service's settings.",
)

CLOSED = "operator routes are closed: JOBS_ADMIN_TOKEN is not set"
STATUS_CLOSED = "status URLs are closed: JOBS_ADMIN_TOKEN is not set"
_said_closed = False


def _token() -> bytes:
    return current().jobs_admin_token.get_secret_value().encode()


def warn_if_closed() -> None:
    """Log, once per process, that the operator routes refuse everyone (no token set)."""
    global _said_closed
    if not _token() and not _said_closed:
        _said_closed = True
        logger.warning(
            "JOBS_ADMIN_TOKEN is not set: the job routes (/jobs, /schedules) and status URLs "
            "refuse every request; set it in .env or the deployment's secrets"
        )


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def require_operator(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(operator_token)],
) -> None:
    """Let the request through only with ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``."""
    token = _token()
    if not token:
        warn_if_closed()
        raise unauthorized(CLOSED)
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, token):
        raise unauthorized("a valid operator token is required (Authorization: Bearer ...)")


def _status_key(job_id: str, token: bytes) -> str:
    derived = hmac.new(token, b"status-url", hashlib.sha256).digest()
    return hmac.new(derived, job_id.encode(), hashlib.sha256).hexdigest()[:32]


def status_url(job_id: str) -> str:
    """The URL where the client that enqueued ``job_id`` reads that job (relative to
    the API's root)."""
    return f"/jobs/{job_id}/status?key={_status_key(job_id, _token())}"


def status_key_matches(job_id: str, key: str) -> bool:
    """Whether ``key`` is ``job_id``'s status key. Raises 401 when no token is set (every
    key would be known: the signature of an empty secret)."""
    token = _token()
    if not token:
        warn_if_closed()
        raise unauthorized(STATUS_CLOSED)
    return hmac.compare_digest(key.encode(), _status_key(job_id, token).encode())


#: ``dependencies=[OperatorOnly]`` on a route or router: operators only.
OperatorOnly = Depends(require_operator)
#: ``responses=UNAUTHORIZED`` beside it: the 401 in the OpenAPI docs.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No operator token, or a wrong one (or none is set: closed)"}
}
