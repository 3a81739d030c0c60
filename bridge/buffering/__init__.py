"""Request and response buffering (nginx's body limits, body timeout and buffering)."""

from __future__ import annotations

from bridge.buffering._rules import RequestBufferingRule
from bridge.buffering.request import RequestBuffering
from bridge.buffering.response import ResponseBuffering

__all__ = ("RequestBuffering", "RequestBufferingRule", "ResponseBuffering")
