"""Custom rejections: a rule's ``rejection=`` option, checked once, rendered per request.

``rejection=`` is either a function ``(head, decision) -> Response`` or a
:class:`~bridge.middleware.Response` used as a template: its body may name
``$retry_after``, ``$remaining``, ``$limit``, ``$rule`` and ``$policy`` (the
violated policy's name) in :class:`string.Template` syntax, which leaves
the braces of JSON and the markup of HTML alone. Unknown placeholders are
refused at construction. Whatever renders the body, the middleware adds
``Retry-After`` and the ``RateLimit`` fields to it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from string import Template
from typing import TypeAlias

from bridge.middleware import RequestHead, Response, set_header
from bridge.ratelimit._decision import LimitDecision

__all__ = ("Rejection", "RenderRejection", "compile_rejection")

RenderRejection: TypeAlias = Callable[[RequestHead, LimitDecision], Response]
Rejection: TypeAlias = "Response | RenderRejection | None"

_PLACEHOLDERS = ("retry_after", "remaining", "limit", "rule", "policy")


def _escape_for(response: Response) -> Callable[[str], str]:
    content_type = (dict(response.headers).get(b"content-type") or b"").lower()
    if b"html" in content_type or b"xml" in content_type:
        return html.escape
    if b"json" in content_type:
        return lambda text: json.dumps(text)[1:-1]  # inside a JSON string
    return str


def _template(response: Response, where: str) -> RenderRejection:
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}rejection: the template body must be UTF-8") from None
    template = Template(text)
    try:
        template.substitute(dict.fromkeys(_PLACEHOLDERS, "0"))
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"{where}rejection: the template may use ${', $'.join(_PLACEHOLDERS)} "
            f"(write $$ for a dollar sign), not {exc}"
        ) from None
    escape = _escape_for(response)
    headers = response.headers

    def render(head: RequestHead, decision: LimitDecision) -> Response:
        violated = decision.violated
        body = template.substitute(
            retry_after=decision.retry_after or 0,
            remaining=decision.remaining,
            limit=decision.limit,
            rule=escape(decision.rule),
            policy=escape(violated[0] if violated else ""),
        ).encode("utf-8")
        sized = set_header(headers, b"content-length", str(len(body)).encode("ascii"))
        return Response(response.status, sized, body)

    return render


def compile_rejection(rejection: object, where: str = "") -> RenderRejection | None:
    """``rejection=`` as a renderer, or None for the built-in body; a clear error otherwise."""
    if rejection is None:
        return None
    if isinstance(rejection, Response):
        if not 400 <= rejection.status <= 599:
            raise ValueError(f"{where}rejection: status must be an HTTP error status")
        return _template(rejection, where)
    if callable(rejection):
        return rejection
    raise TypeError(
        f"{where}rejection must be a Response (a template) or a function "
        f"(head, decision) -> Response, not {rejection!r}"
    )
