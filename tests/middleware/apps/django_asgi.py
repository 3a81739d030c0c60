"""Django's asgi.py, wrapped: ``application = X(get_asgi_application(), ...)``."""

from __future__ import annotations

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

from bridge import ProxyHeaders, SecurityHeaders

from . import django_site  # noqa: F401 - configures settings

application = ProxyHeaders(
    SecurityHeaders(get_asgi_application(), preset="strict"), use=["for", "proto", "host"]
)
