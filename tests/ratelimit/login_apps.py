"""A Flask login view whose failed attempts are limited (served by gunicorn in
test_login_server.py): 5 wrong passwords a minute per client, right ones free."""

from __future__ import annotations

import hmac

from flask import Flask, request

from bridge.ratelimit import RateLimit, Rule

PASSWORD = "correct horse"

app = Flask(__name__)


@app.post("/login")
def login() -> tuple[str, int]:
    left = request.environ["bridge.ratelimit"].remaining
    if hmac.compare_digest(request.form.get("password", ""), PASSWORD):
        return "welcome\n", 200
    return f"wrong password; {left} attempts left\n", 401


app.wsgi_app = RateLimit(  # type: ignore[method-assign]
    app.wsgi_app,
    None,
    rules=[Rule("5/minute", path="=/login", methods="POST", count_when=(401, 403))],
)
