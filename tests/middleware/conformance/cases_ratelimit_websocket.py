"""Rate limits on websocket handshakes and open websocket connections (ASGI only).

A handshake refused by RateLimit or ConcurrencyLimit is closed before accept
(code 1008) unless the server offers the ``websocket.http.response``
extension; then it gets the HTTP rejection itself, headers and body. A
handshake RateLimit admitted carries its fields on ``websocket.accept``. A
connection ConcurrencyLimit admitted holds its slot until the app returns
(the connection closed).
"""

from __future__ import annotations

from typing import Any

import anyio

from bridge.ratelimit import ConcurrencyLimit, RateLimit, Rule, response_cost

from . import AsgiCase

Message = dict[str, Any]
DENIAL: dict[str, Any] = {"websocket.http.response": {}}
CLIENT = ("203.0.113.9", 50000)


def scope(path: str = "/ws", extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "ws",
        "client": CLIENT,
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    if extensions is not None:
        fields["extensions"] = extensions
    return fields


async def echo_once(scope: Any, receive: Any, send: Any) -> None:
    """Accepts, says how many handshakes the limiter has left, closes."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    decision = scope.get("bridge.ratelimit")
    text = "-" if decision is None else str(decision.remaining)
    await send({"type": "websocket.send", "text": text})
    await send({"type": "websocket.close", "code": 1000})


async def handshake(
    app: Any, extensions: dict[str, Any] | None = None, path: str = "/ws"
) -> list[Message]:
    """One connection that only connects; what the app (through ``app``) sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope(path, extensions), receive, send)
    return sent


def accepted(left: str, *fields: tuple[bytes, bytes]) -> list[Message]:
    accept: Message = {"type": "websocket.accept"}
    if fields:
        accept["headers"] = list(fields)
    return [
        accept,
        {"type": "websocket.send", "text": left},
        {"type": "websocket.close", "code": 1000},
    ]


def kinds(sent: list[Message]) -> list[str]:
    return [message["type"] for message in sent]


CLOSED = [{"type": "websocket.close", "code": 1008}]


async def _passes_through_by_default(_: Any) -> None:
    for build in (
        lambda: RateLimit(echo_once, "1/minute"),
        lambda: ConcurrencyLimit(echo_once, 1),
    ):
        app = build()
        assert await handshake(app) == accepted("-")
        assert await handshake(app) == accepted("-")


async def _handshakes_limited(_: Any) -> None:
    app = RateLimit(echo_once, "2/minute", websocket=True, clock=lambda: 1000.0)
    policy = (b"ratelimit-policy", b'"2/minute";q=2;w=60')
    # the decision is in the scope, its fields on the accept
    assert await handshake(app) == accepted("1", policy, (b"ratelimit", b'"2/minute";r=1;t=30'))
    assert await handshake(app) == accepted("0", policy, (b"ratelimit", b'"2/minute";r=0;t=60'))
    assert await handshake(app) == CLOSED  # no denial extension: closed before accept
    refused = await handshake(app, DENIAL)
    body = b"Too Many Requests: retry in 30 seconds.\n"
    assert refused == [
        {
            "type": "websocket.http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"30"),
                (b"ratelimit-policy", b'"2/minute";q=2;w=60'),
                (b"ratelimit", b'"2/minute";r=0;t=60'),
            ],
        },
        {"type": "websocket.http.response.body", "body": body},
    ]


async def _rules_pick_websocket_paths(_: Any) -> None:
    app = RateLimit(echo_once, None, rules=[Rule("1/minute", path="/chat")], websocket=True)
    fields = (
        (b"ratelimit-policy", b'"1/minute";q=1;w=60'),
        (b"ratelimit", b'"1/minute";r=0;t=60'),
    )
    assert await handshake(app, path="/chat/room") == accepted("0", *fields)
    assert await handshake(app, path="/chat/room") == CLOSED
    assert await handshake(app) == accepted("-")  # /ws: no rule
    assert await handshake(app) == accepted("-")


async def accept_with_own_headers(scope: Any, receive: Any, send: Any) -> None:
    """Accepts with a subprotocol and a header of its own."""
    assert (await receive())["type"] == "websocket.connect"
    headers = [(b"x-room", b"lobby")]
    await send({"type": "websocket.accept", "subprotocol": "chat", "headers": headers})
    await send({"type": "websocket.close", "code": 1000})


async def _fields_join_the_apps_accept_headers(_: Any) -> None:
    app = RateLimit(accept_with_own_headers, "2/minute", websocket=True, clock=lambda: 0.0)
    sent = await handshake(app)
    assert sent[0] == {
        "type": "websocket.accept",
        "subprotocol": "chat",
        "headers": [
            (b"x-room", b"lobby"),
            (b"ratelimit-policy", b'"2/minute";q=2;w=60'),
            (b"ratelimit", b'"2/minute";r=1;t=30'),
        ],
    }
    quiet = RateLimit(accept_with_own_headers, "2/minute", websocket=True, headers=False)
    own = {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-room", b"lobby")]}
    assert (await handshake(quiet))[0] == own  # headers=False: the app's accept as it was


async def charge_spam(scope: Any, receive: Any, send: Any) -> None:
    """Accepts; a connection on /spam is charged 1 when it ends, others nothing."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    if scope["path"] == "/spam":
        scope["bridge.ratelimit"].charge(1)
    await send({"type": "websocket.close", "code": 1000})


async def _app_charges_websockets(_: Any) -> None:
    """No response head on a websocket: only the app's charge counts, when it ends."""
    app = RateLimit(charge_spam, "2/minute", cost=response_cost(), websocket=True)
    opened = ["websocket.accept", "websocket.close"]
    for _ in range(3):
        assert kinds(await handshake(app)) == opened  # given back: free
    assert kinds(await handshake(app, path="/spam")) == opened
    assert kinds(await handshake(app, path="/spam")) == opened
    assert await handshake(app) == CLOSED  # two charged: spent


async def refuse_some(scope: Any, receive: Any, send: Any) -> None:
    """Accepts and closes, except on /bad (closed before accept: the server answers 403)
    and /denied (the app's own 401, where the server offers the denial extension)."""
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] == "/bad":
        await send({"type": "websocket.close", "code": 4401})
        return
    if scope["path"] == "/denied":
        start = {"status": 401, "headers": [(b"content-type", b"text/plain")]}
        await send({"type": "websocket.http.response.start", **start})
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


async def _refused_handshakes_counted(_: Any) -> None:
    """count_when sees a handshake's answer: the 403 of a close before accept counts, a
    101 does not; the limit then refuses every handshake."""
    app = RateLimit(refuse_some, "2/minute", websocket=True, count_when=(403,), headers=False)
    for _ in range(3):
        assert kinds(await handshake(app)) == ["websocket.accept", "websocket.close"]  # free
    refused_by_app = [{"type": "websocket.close", "code": 4401}]
    assert await handshake(app, path="/bad") == refused_by_app
    assert await handshake(app, path="/bad") == refused_by_app
    assert await handshake(app) == CLOSED  # two refusals counted: spent


async def _apps_denial_response_counted(_: Any) -> None:
    """The app's own denial response is the handshake's head: counted by status, and it
    carries the RateLimit fields as an HTTP response would."""
    app = RateLimit(refuse_some, "1/minute", websocket=True, count_when=(401,), clock=lambda: 0.0)
    denied = await handshake(app, DENIAL, path="/denied")
    assert denied[0] == {
        "type": "websocket.http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"text/plain"),
            (b"ratelimit-policy", b'"1/minute";q=1;w=60'),
            (b"ratelimit", b'"1/minute";r=0;t=60'),
        ],
    }
    assert denied[1] == {"type": "websocket.http.response.body", "body": b"who are you?"}
    refused = await handshake(app, DENIAL)
    assert refused[0]["status"] == 429


async def _connections_capped_until_closed(_: Any) -> None:
    """Two open connections fill a cap of 2; the third is refused; one closing frees a slot."""
    app = ConcurrencyLimit(echo_until_closed, 2, websocket=True)
    closers: list[anyio.Event] = []
    async with anyio.create_task_group() as group:
        for _ in range(2):
            opened, closer = anyio.Event(), anyio.Event()
            closers.append(closer)
            group.start_soon(hold_open, app, opened, closer)
            await opened.wait()
        assert await handshake(app) == CLOSED
        refused = await handshake(app, DENIAL)
        assert refused[0]["type"] == "websocket.http.response.start"
        assert refused[0]["status"] == 503
        assert (b"retry-after", b"1") in refused[0]["headers"]
        closers[0].set()
        await anyio.wait_all_tasks_blocked()
        third_open, third_close = anyio.Event(), anyio.Event()
        group.start_soon(hold_open, app, third_open, third_close)
        await third_open.wait()  # admitted: the first connection's slot came back
        assert await handshake(app) == CLOSED  # full again
        closers[1].set()
        third_close.set()


async def echo_until_closed(scope: Any, receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def hold_open(app: Any, opened: anyio.Event, closer: anyio.Event) -> None:
    """A connection that stays open until ``closer`` is set."""
    connected = False

    async def receive() -> Message:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await closer.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        if message["type"] == "websocket.accept":
            opened.set()

    await app(scope(), receive, send)


ASGI_CASES = [
    AsgiCase(
        "ratelimit-websocket-passes-through-by-default", lambda app: app, _passes_through_by_default
    ),
    AsgiCase("ratelimit-websocket-handshakes-limited", lambda app: app, _handshakes_limited),
    AsgiCase("ratelimit-websocket-rules-by-path", lambda app: app, _rules_pick_websocket_paths),
    AsgiCase(
        "ratelimit-websocket-fields-join-the-accept",
        lambda app: app,
        _fields_join_the_apps_accept_headers,
    ),
    AsgiCase("ratelimit-websocket-charged-by-the-app", lambda app: app, _app_charges_websockets),
    AsgiCase(
        "ratelimit-websocket-refused-handshakes-counted",
        lambda app: app,
        _refused_handshakes_counted,
    ),
    AsgiCase(
        "ratelimit-websocket-apps-denial-response-counted",
        lambda app: app,
        _apps_denial_response_counted,
    ),
    AsgiCase(
        "concurrency-websocket-connections-capped-until-closed",
        lambda app: app,
        _connections_capped_until_closed,
    ),
]
