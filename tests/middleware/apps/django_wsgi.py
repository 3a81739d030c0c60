"""Django's wsgi.py, wrapped: ``application = X(get_wsgi_application(), ...)``."""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

from bridge import ProxyHeaders, SecurityHeaders

from . import django_site  # noqa: F401 - configures settings

application = ProxyHeaders(
    SecurityHeaders(get_wsgi_application(), preset="strict"), use=["for", "proto", "host"]
)
