"""Failed-login throttling through a real server: a Flask view under gunicorn on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PYTHON, RunServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]


def test_five_wrong_passwords_then_429_and_right_ones_not_counted(run_server: RunServer) -> None:
    server = run_server(
        lambda port: [
            *(PYTHON, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"),
            "tests.ratelimit.login_apps:app",
        ]
    )
    right = {"password": "correct horse"}
    wrong = {"password": "hunter2"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = []
        for _ in range(5):
            answers.append(client.post("/login", data=right))  # never counted
            answers.append(client.post("/login", data=wrong))
        refused = client.post("/login", data=wrong)
        refused_right = client.post("/login", data=right)
    assert [a.status_code for a in answers] == [200, 401] * 5
    # The view reads the decision: the attempts left before this one counts.
    assert [a.text for a in answers[1::2]] == [
        f"wrong password; {left} attempts left\n" for left in (4, 3, 2, 1, 0)
    ]
    assert answers[0].headers["ratelimit"] == '"5/minute";r=5;t=0'
    assert answers[9].headers["ratelimit"].startswith('"5/minute";r=0;')
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 12  # one attempt back every 12 s
    # Spent: refused before the view runs, whatever the password.
    assert refused_right.status_code == 429
