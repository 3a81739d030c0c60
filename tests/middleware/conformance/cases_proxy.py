"""ProxyHeaders cases, including the bad-input list."""

from __future__ import annotations

from typing import Any

from bridge import ProxyHeaders, SecurityHeaders
from bridge.testing import FakeClock, Request, Seen

from . import AsgiCase, Case, Step

HOST = (b"host", b"testserver")
PEER = ("127.0.0.1", 50000)  # the default client of bridge.testing.Request: trusted by default


def proxy(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return ProxyHeaders(app, clock=clock, **options)

    return build


def get(*headers: tuple[bytes, bytes], client: tuple[str, int] | None = PEER, **kw: Any) -> Request:
    return Request(headers=[HOST, *headers], client=client, **kw)


def saw(**fields: Any) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        for name, value in fields.items():
            if name == "original":
                actual = seen.head.values.get("bridge.proxy.original")
            elif name == "header_names":  # the request's header names, in order
                actual = [key for key, _ in seen.head.headers]
            elif name == "host":
                actual = seen.head.header(b"host")
            else:
                actual = getattr(seen.head, name)
            assert actual == value, (name, actual, value)

    return check


XFF = b"x-forwarded-for"
XFP = b"x-forwarded-proto"
XFH = b"x-forwarded-host"
XFPORT = b"x-forwarded-port"
XRI = b"x-real-ip"
FWD = b"forwarded"
ORIGINAL = {
    "client": PEER,
    "scheme": "http",
    "host": "testserver",
    "server": ("testserver", 80),
    "root_path": "",
}

CASES = [
    Case(
        "proxy-trusted-peer-for-and-proto",
        proxy(),
        [
            Step(
                get((XFF, b"203.0.113.5"), (XFP, b"https")),
                status=200,
                seen=saw(client=("203.0.113.5", 0), scheme="https", original=ORIGINAL),
            )
        ],
    ),
    Case(
        "proxy-untrusted-peer-is-ignored",
        proxy(),
        [
            Step(
                get((XFF, b"203.0.113.5"), (XFP, b"https"), client=("198.51.100.9", 1234)),
                status=200,
                seen=saw(client=("198.51.100.9", 1234), scheme="http", original=None),
            )
        ],
    ),
    Case(  # the default trusts a Unix socket's peer, which has no address
        "proxy-no-client-address-is-a-unix-socket-peer",
        proxy(),
        [
            Step(
                get((XFF, b"203.0.113.5"), client=None),
                status=200,
                seen=saw(client=("203.0.113.5", 0)),
            )
        ],
    ),
    Case(
        "proxy-no-client-address-is-untrusted-without-unix",
        proxy(trusted=["127.0.0.1", "::1"]),
        [Step(get((XFF, b"203.0.113.5"), client=None), status=200, seen=saw(client=None))],
    ),
    Case(
        "proxy-walks-right-to-left-skipping-trusted-hops",
        proxy(trusted=["127.0.0.1", "10.0.0.0/8"]),
        [
            Step(
                get((XFF, b"203.0.113.5, 198.51.100.1, 10.1.2.3")),
                status=200,
                seen=saw(client=("198.51.100.1", 0)),
            )
        ],
    ),
    Case(
        "proxy-duplicate-x-forwarded-for-lines-are-one-chain",
        proxy(),
        [
            Step(
                get((XFF, b"203.0.113.5"), (XFF, b"198.51.100.1")),
                status=200,
                seen=saw(client=("198.51.100.1", 0)),
            )
        ],
    ),
    Case(
        "proxy-fewer-values-than-trusted-proxies",
        proxy(trusted=["127.0.0.1", "10.0.0.0/8"]),
        [
            Step(get((XFF, b"203.0.113.5")), status=200, seen=saw(client=("203.0.113.5", 0))),
            # every hop trusted: the leftmost is the client
            Step(get((XFF, b"10.0.0.7, 10.0.0.8")), status=200, seen=saw(client=("10.0.0.7", 0))),
        ],
    ),
    Case(
        "proxy-more-values-than-hops-ignores-spoofed-left-entries",
        proxy(),
        [
            Step(
                get((XFF, b"1.1.1.1, 2.2.2.2, 203.0.113.5")),
                status=200,
                seen=saw(client=("203.0.113.5", 0)),
            )
        ],
    ),
    Case(
        "proxy-ipv6-brackets-and-ports",
        proxy(trusted=["127.0.0.1", "::1", "fd00::/8"]),
        [
            Step(
                get((XFF, b"[2001:db8::1]:4711")),
                status=200,
                seen=saw(client=("2001:db8::1", 4711)),
            ),
            Step(
                get((XFF, b"203.0.113.5:8080")), status=200, seen=saw(client=("203.0.113.5", 8080))
            ),
            Step(
                get((XFF, b"2001:db8::2, fd00::1"), client=("::1", 1)),
                status=200,
                seen=saw(client=("2001:db8::2", 0)),
            ),
        ],
    ),
    Case(
        "proxy-malformed-x-forwarded-for-is-ignored",
        proxy(),
        [
            Step(get((XFF, b"203.0.113.5, not-an-ip")), status=200, seen=saw(client=PEER)),
            Step(get((XFF, b"203.0.113.5,,")), status=200, seen=saw(client=PEER)),
            Step(get((XFF, b"[2001:db8::1")), status=200, seen=saw(client=PEER)),
            Step(get((XFF, b"203.0.113.5:99999")), status=200, seen=saw(client=PEER)),
        ],
    ),
    Case(
        "proxy-invalid-proto-is-ignored",
        proxy(),
        [
            Step(get((XFP, b"javascript")), status=200, seen=saw(scheme="http")),
            Step(get((XFP, b"HTTPS")), status=200, seen=saw(scheme="https")),
            # the nearest proxy's value wins
            Step(get((XFP, b"http, https")), status=200, seen=saw(scheme="https")),
        ],
    ),
    Case(
        "proxy-host-and-port",
        proxy(use=["for", "proto", "host", "port"]),
        [
            Step(
                get(
                    (b"x-forwarded-host", b"Example.COM"),
                    (b"x-forwarded-port", b"8443"),
                    (XFP, b"https"),
                ),
                status=200,
                seen=saw(host=b"example.com:8443", server=("example.com", 8443), scheme="https"),
            ),
            Step(
                get((b"x-forwarded-host", b"example.com"), (XFP, b"https")),
                status=200,
                seen=saw(host=b"example.com", server=("example.com", 443)),
            ),
            Step(
                get((b"x-forwarded-host", b"[2001:db8::5]:8080")),
                status=200,
                seen=saw(host=b"[2001:db8::5]:8080", server=("2001:db8::5", 8080)),
            ),
        ],
    ),
    Case(
        "proxy-invalid-host-and-port-are-ignored",
        proxy(use=["host", "port"]),
        [
            Step(
                get((b"x-forwarded-host", b"evil.com/path")),
                status=200,
                seen=saw(host=b"testserver"),
            ),
            Step(get((b"x-forwarded-host", b"a b")), status=200, seen=saw(host=b"testserver")),
            Step(get((b"x-forwarded-port", b"http")), status=200, seen=saw(host=b"testserver")),
        ],
    ),
    Case(
        "proxy-host-not-used-unless-enabled",
        proxy(),
        [
            Step(
                get((b"x-forwarded-host", b"evil.example")),
                status=200,
                seen=saw(host=b"testserver"),
            )
        ],
    ),
    Case(
        "proxy-prefix-becomes-root-path",
        proxy(use=["prefix"]),
        [
            Step(
                get((b"x-forwarded-prefix", b"/api/v1/"), path="/items/caf\u00e9"),
                status=200,
                seen=saw(
                    root_path="/api/v1",
                    path="/api/v1/items/caf\u00e9",
                    raw_path=b"/api/v1/items/caf%C3%A9",
                ),
            ),
            Step(get((b"x-forwarded-prefix", b"/../etc")), status=200, seen=saw(root_path="")),
            Step(get((b"x-forwarded-prefix", b"no-slash")), status=200, seen=saw(root_path="")),
        ],
    ),
    Case(
        "proxy-forwarded-mode",
        proxy(mode="forwarded", use=["for", "proto", "host"]),
        [
            Step(
                get((b"forwarded", b"for=203.0.113.5;proto=https;host=example.com, for=127.0.0.1")),
                status=200,
                seen=saw(client=("203.0.113.5", 0), scheme="https", host=b"example.com"),
            ),
            Step(
                get((b"forwarded", b'for="[2001:db8::7]:1234";proto=https')),
                status=200,
                seen=saw(client=("2001:db8::7", 1234), scheme="https"),
            ),
            # the X-Forwarded family is not read in this mode
            Step(get((XFF, b"203.0.113.5"), (XFP, b"https")), status=200, seen=saw(client=PEER)),
            Step(get((b"forwarded", b"for=unknown")), status=200, seen=saw(client=PEER)),
            Step(get((b"forwarded", b"for=203.0.113.5;;")), status=200, seen=saw(client=PEER)),
        ],
    ),
    Case(
        "proxy-x-forwarded-mode-ignores-forwarded",
        proxy(),
        [
            Step(
                get((b"forwarded", b"for=203.0.113.5;proto=https")),
                status=200,
                seen=saw(client=PEER),
            )
        ],
    ),
    Case(
        "proxy-then-security-headers-hsts-only-over-resolved-https",
        lambda app, clock: ProxyHeaders(SecurityHeaders(app, clock=clock), clock=clock),
        [
            Step(
                get((XFP, b"https")),
                status=200,
                has_headers=[
                    (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
                ],
            ),
            Step(get(), status=200, lacks_headers=[b"strict-transport-security"]),
            Step(
                get((XFP, b"https"), client=("198.51.100.9", 1)),
                status=200,
                lacks_headers=[b"strict-transport-security"],
            ),
        ],
    ),
    Case(
        # werkzeug's ProxyFix sets SERVER_PORT whether or not there is a Host header
        "proxy-port-without-host-header-applies-to-the-server",
        proxy(use=["proto", "port"]),
        [
            Step(
                Request(headers=[(XFPORT, b"8443")], client=PEER),
                status=200,
                seen=saw(server=("testserver", 8443), host=None, header_names=[XFPORT]),
            ),
            Step(
                Request(headers=[(XFPORT, b"8443"), (XFP, b"https")], client=PEER),
                status=200,
                seen=saw(server=("testserver", 8443), scheme="https", host=None),
            ),
            # an unusable Host header: the port still reaches the server, the header stays
            Step(
                Request(headers=[(b"host", b"a b"), (XFPORT, b"8080")], client=PEER),
                status=200,
                seen=saw(server=("testserver", 8080), host=b"a b"),
            ),
        ],
    ),
    Case(
        "proxy-x-real-ip-mode",
        proxy(mode="x-real-ip", use=["for", "proto", "host"]),
        [
            Step(
                get((XRI, b"203.0.113.7"), (XFP, b"https"), (b"x-forwarded-host", b"shop.example")),
                status=200,
                seen=saw(
                    client=("203.0.113.7", 0),
                    scheme="https",
                    host=b"shop.example",
                    original=ORIGINAL,
                ),
            ),
            Step(get((XRI, b"2001:db8::9")), status=200, seen=saw(client=("2001:db8::9", 0))),
            Step(
                get((XRI, b"[2001:db8::9]:4000")),
                status=200,
                seen=saw(client=("2001:db8::9", 4000)),
            ),
            # the nearest proxy's value is the last; X-Forwarded-For is not read (and removed)
            Step(
                get((XRI, b"1.1.1.1, 203.0.113.8"), (XFF, b"198.51.100.1")),
                status=200,
                seen=saw(client=("203.0.113.8", 0), header_names=[b"host", XRI]),
            ),
            Step(get((XRI, b"not-an-ip")), status=200, seen=saw(client=PEER, original=None)),
            Step(get((XRI, b"")), status=200, seen=saw(client=PEER)),
            Step(
                get((XRI, b"203.0.113.7"), client=("198.51.100.9", 1)),
                status=200,
                seen=saw(client=("198.51.100.9", 1), header_names=[b"host"]),
            ),
        ],
    ),
    Case(
        # nginx's X-Real-IP block sets no X-Forwarded-Proto: a client's own must not count
        "proxy-x-real-ip-mode-reads-only-the-client-by-default",
        proxy(mode="x-real-ip"),
        [
            Step(
                get((XRI, b"203.0.113.7"), (XFP, b"https")),
                status=200,
                seen=saw(client=("203.0.113.7", 0), scheme="http", header_names=[b"host", XRI]),
            )
        ],
    ),
    Case(
        "proxy-untrusted-peer-loses-every-forwarded-header",
        proxy(use=["for", "proto", "host", "port", "prefix"]),
        [
            Step(
                get(
                    (XFF, b"203.0.113.5"),
                    (XFP, b"https"),
                    (b"accept", b"*/*"),
                    (XFH, b"evil.example"),
                    (XFPORT, b"443"),
                    (b"x-forwarded-prefix", b"/x"),
                    (FWD, b"for=1.2.3.4;proto=https"),
                    (XRI, b"1.2.3.4"),
                    client=("198.51.100.9", 1234),
                ),
                status=200,
                seen=saw(
                    client=("198.51.100.9", 1234),
                    scheme="http",
                    header_names=[b"host", b"accept"],
                    original=None,
                ),
            )
        ],
    ),
    Case(
        "proxy-trusted-peer-loses-the-headers-it-does-not-read",
        proxy(),
        [
            Step(
                get((XFF, b"203.0.113.5"), (XFH, b"evil.example"), (FWD, b"proto=https")),
                status=200,
                seen=saw(
                    client=("203.0.113.5", 0), host=b"testserver", header_names=[b"host", XFF]
                ),
            ),
            # only unread headers: removed, nothing else rewritten
            Step(
                get((XFH, b"evil.example")),
                status=200,
                seen=saw(header_names=[b"host"], original=None),
            ),
        ],
    ),
    Case(
        "proxy-strip-ignored-off-keeps-the-headers",
        proxy(strip_ignored=False),
        [
            Step(
                get((XFP, b"https"), (XFH, b"evil.example"), client=("198.51.100.9", 1)),
                status=200,
                seen=saw(scheme="http", header_names=[b"host", XFP, XFH]),
            ),
            Step(
                get((XFF, b"203.0.113.5"), (FWD, b"for=1.2.3.4")),
                status=200,
                seen=saw(client=("203.0.113.5", 0), header_names=[b"host", XFF, FWD]),
            ),
        ],
    ),
    Case(
        "proxy-trusted-as-a-comma-separated-string",
        proxy(trusted=" 10.0.0.1, 127.0.0.0/8,::1 "),
        [
            Step(get((XFF, b"203.0.113.5")), status=200, seen=saw(client=("203.0.113.5", 0))),
            Step(
                get((XFF, b"203.0.113.5"), client=("10.0.0.2", 1)),
                status=200,
                seen=saw(client=("10.0.0.2", 1)),
            ),
        ],
    ),
    # -- bad input the list did not name --
    Case(
        "proxy-empty-and-blank-values-are-ignored",
        proxy(use=["for", "proto", "host", "port", "prefix"]),
        [
            Step(get((XFF, b"")), status=200, seen=saw(client=PEER)),
            Step(get((XFF, b" , ")), status=200, seen=saw(client=PEER)),
            Step(get((XFP, b"")), status=200, seen=saw(scheme="http")),
            Step(get((b"x-forwarded-host", b"")), status=200, seen=saw(host=b"testserver")),
            Step(get((b"x-forwarded-port", b"+80")), status=200, seen=saw(host=b"testserver")),
            Step(get((b"x-forwarded-port", b"0")), status=200, seen=saw(host=b"testserver")),
            Step(get((b"x-forwarded-prefix", b"")), status=200, seen=saw(root_path="")),
        ],
    ),
    Case(
        "proxy-very-long-chain-is-bounded",
        proxy(trusted="*"),
        [
            # 65 trusted hops: more than any deployment; the chain is refused, not walked
            Step(
                get((XFF, b", ".join([b"10.0.0.1"] * 65))),
                status=200,
                seen=saw(client=PEER),
            ),
            Step(
                get((XFF, b", ".join([b"203.0.113.1"] + [b"10.0.0.1"] * 10))),
                status=200,
                seen=saw(client=("203.0.113.1", 0)),
            ),
        ],
    ),
    Case(
        "proxy-ipv4-mapped-peer-and-unix-socket-peer",
        proxy(trusted=["10.0.0.0/8"]),
        [
            Step(
                get((XFF, b"203.0.113.5"), client=("::ffff:10.1.2.3", 1)),
                status=200,
                seen=saw(client=("203.0.113.5", 0)),
            ),
            Step(
                get((XFF, b"203.0.113.5"), client=("/run/app.sock", 0)),
                status=200,
                seen=saw(client=("/run/app.sock", 0)),
            ),
        ],
    ),
    Case(
        "proxy-malformed-hosts-are-refused",
        proxy(use=["host"]),
        [
            Step(
                get((b"x-forwarded-host", b"a.com, evil.com")),
                status=200,
                seen=saw(host=b"evil.com"),
            ),
            Step(
                get((b"x-forwarded-host", b"evil.com@a.com")),
                status=200,
                seen=saw(host=b"testserver"),
            ),
            Step(
                get((b"x-forwarded-host", b"a.com:80:80")), status=200, seen=saw(host=b"testserver")
            ),
        ],
    ),
]


async def _websocket_after_http(app: Any) -> None:
    """The same forwarded headers on an http request and then a websocket: the
    websocket gets ``wss``, not the http request's ``https`` (plans are per scheme)."""
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], scope["scheme"], scope["client"]))
        seen.append(dict(scope["bridge.proxy.original"]))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "websocket.close", "code": 1000})

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    proxy_app = ProxyHeaders(inner)
    http = get((XFF, b"203.0.113.5"), (XFP, b"https")).scope()
    websocket = {**http, "type": "websocket", "scheme": "ws", "subprotocols": []}
    del websocket["method"]
    for scope in (http, websocket, http):
        await proxy_app(dict(scope), receive, send)
    original = {**ORIGINAL, "server": ("testserver", 80)}
    assert seen == [
        ("http", "https", ("203.0.113.5", 0)),
        original,
        ("websocket", "wss", ("203.0.113.5", 0)),
        {**original, "scheme": "ws"},
        ("http", "https", ("203.0.113.5", 0)),
        original,
    ]


ASGI_CASES = [
    AsgiCase("proxy-websocket-gets-ws-schemes", lambda app: app, _websocket_after_http),
]
