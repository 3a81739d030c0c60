"""Apps whose bridge middleware is misconfigured through add_middleware(): Starlette and
FastAPI build it lazily, at the first lifespan event (tests/test_construction_errors.py)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette

from bridge import TrustedHost

starlette_app = Starlette()
starlette_app.add_middleware(TrustedHost, www_redirect="yes")  # type: ignore[arg-type]

fastapi_app = FastAPI()
fastapi_app.add_middleware(TrustedHost, www_redirect="yes")  # type: ignore[arg-type]
