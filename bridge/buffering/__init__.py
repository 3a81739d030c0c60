"""Request and response buffering (nginx's body limits, body timeout and buffering)."""

from __future__ import annotations

from ._rules import RequestBufferingRule
from .request import RequestBuffering
from .response import ResponseBuffering

__all__ = ("RequestBuffering", "RequestBufferingRule", "ResponseBuffering")
