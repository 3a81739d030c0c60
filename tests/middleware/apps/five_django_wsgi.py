"""Django's wsgi.py with CORS and TrustedHost: ``application = X(get_wsgi_application())``."""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

from bridge import CORS, TrustedHost

from . import django_site  # noqa: F401 - configures settings
from .five_common import ALLOWED_HOSTS, CORS_OPTIONS

application = TrustedHost(CORS(get_wsgi_application(), **CORS_OPTIONS), allowed_hosts=ALLOWED_HOSTS)
