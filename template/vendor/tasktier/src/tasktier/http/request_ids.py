"""Request ids: every request gets one, every log line of it and of its jobs shows it.

The id comes from the request's ``X-Request-ID`` header (a proxy or the caller chose it)
when it is 1 to 128 letters, digits, ``-``, ``_``, ``.`` or ``:``; otherwise (missing,
too long, other characters) a new one is made, so a client cannot write anything else
into the logs. The response carries it back in ``X-Request-ID``, and every job the
request enqueues carries it in its metadata (:func:`tasktier.model.job_metadata`).
"""

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..model import serving_request

HEADER = "x-request-id"
#: What a request id taken from a client may be made of.
VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(value: str | None) -> str:
    """``value`` when it is a valid request id, else a new one."""
    if value is not None and VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: the request id of each HTTP request, set for its duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [v for k, v in scope["headers"] if k == HEADER.encode()]
        rid = request_id_of(given[0].decode("latin-1") if len(given) == 1 else None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        with serving_request(rid):
            await self.app(scope, receive, send_with_id)
