"""Django's asgi.py with CORS and TrustedHost: ``application = X(get_asgi_application())``."""

from __future__ import annotations

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

from bridge import CORS, TrustedHost

from . import django_site  # noqa: F401 - configures settings
from .five_common import ALLOWED_HOSTS, CORS_OPTIONS

application = TrustedHost(CORS(get_asgi_application(), **CORS_OPTIONS), allowed_hosts=ALLOWED_HOSTS)
