"""One set of translation rules between a WSGI environ and an ASGI HTTP scope.

Theory of operation
-------------------
Both adapters and both middleware drivers go through this module, so a request
looks the same whichever side it came from:

* Paths. ASGI carries the decoded path as ``str`` (UTF-8) and includes
  ``root_path`` as its prefix. WSGI carries "bytes in str": the raw UTF-8 bytes
  re-read as latin-1, split into SCRIPT_NAME (the mount point) and PATH_INFO.
  ``root_path`` owns a path only at a segment boundary: ``/mnt`` owns ``/mnt``
  and ``/mnt/a`` but not ``/mntx/a``.
* Request headers. ASGI: a list of ``(lowercase name, value)`` byte pairs.
  WSGI: CONTENT_TYPE / CONTENT_LENGTH bare, everything else as ``HTTP_*``;
  repeated headers are joined with ``", "`` (``"; "`` for Cookie). Names with
  ``_`` are dropped on the way into an environ unless allowed, because
  ``X_User`` and ``X-User`` collide there and a client could spoof one with
  the other.
* Response headers stay a list in both directions, so Set-Cookie survives.

Every failure here is a :class:`BadRequest` that carries the HTTP status the
caller should answer with; nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast

from asgiref.typing import HTTPScope

from bridge._http.headers import parse_length
from bridge._http.memo import Memo
from bridge._http.paths import quote_path, split_root_path
from bridge._http.types import Environ

__all__ = (
    "DEFAULT_MAX_HEADER_LINES",
    "BadRequest",
    "apply_scope_fields_to_environ",
    "environ_client",
    "environ_from_scope",
    "environ_header",
    "environ_http_version",
    "environ_key",
    "environ_lines_named",
    "environ_method",
    "environ_path",
    "environ_query",
    "environ_raw_path",
    "environ_root_path",
    "environ_scheme",
    "environ_server",
    "headers_from_environ",
    "normalize_request_headers",
    "parse_content_length",
    "request_fields_from_environ",
    "scope_from_environ",
    "scope_header",
    "scope_lines_named",
    "split_root_path",
    "undelivered_body",
)

#: Same default as gunicorn's ``limit_request_fields``.
DEFAULT_MAX_HEADER_LINES: Final = 100

_SPECIAL_ENVIRON_HEADERS: Final = {
    "CONTENT_TYPE": b"content-type",
    "CONTENT_LENGTH": b"content-length",
}
_JOINERS: Final = {b"cookie": "; "}
#: Request headers CGI keeps without an ``HTTP_`` prefix, each with rules of its own.
_BARE_HEADERS: Final = frozenset({b"content-type", b"content-length"})


class BadRequest(Exception):
    """The request cannot be translated; answer it with :attr:`status`.

    The message names the problem and is meant for one log line.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- paths -------------------------------------------------------------------


def _wsgi_str(text: str) -> str:
    """Unicode text to WSGI's "bytes in str" form (UTF-8 bytes read as latin-1)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _unicode_from_wsgi(text: str, what: str) -> str:
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest(f"{what} is not valid UTF-8: {text!r}") from None


# -- headers -----------------------------------------------------------------


def undelivered_body() -> BadRequest:
    """The 411 for a request that announces a body (``Transfer-Encoding``) the WSGI server
    neither de-chunks nor ends: no CONTENT_LENGTH and no ``wsgi.input_terminated``
    (wsgiref hands over the raw socket). PEP 3333 reads such a body as empty, so it is
    refused rather than lost, as mod_wsgi refuses it."""
    return BadRequest(
        "a chunked request body the WSGI server neither de-chunks nor ends "
        "(no CONTENT_LENGTH, no wsgi.input_terminated): enable the server's "
        "chunked request support",
        411,
    )


def parse_content_length(values: Iterable[bytes]) -> int | None:
    """The single Content-Length of a request, or None when there is none.

    Raises :class:`BadRequest` (400) for a repeated, negative or non-numeric
    value: a request whose length is ambiguous must not be guessed at.
    """
    found: int | None = None
    for value in values:
        if found is not None:
            raise BadRequest("duplicated Content-Length header")
        found = parse_length(value)
        if found is None:
            raise BadRequest(f"invalid Content-Length: {value[:40]!r}")
    return found


def _environ_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    max_header_lines: int,
    allow_underscores: bool,
) -> dict[str, str]:
    """Request header pairs to CGI keys; linear in the number of lines.

    The common case, where no two kept lines share a CGI key, takes one pass; any
    repeat goes to :func:`_environ_headers_grouped`, which gives the same result for
    that case (Content-Length is checked after the line cap, as there).
    """
    if not isinstance(headers, (list, tuple)):
        headers = list(headers)  # a repeat starts over
    out: dict[str, str] = {}
    lines = 0
    for name, value in headers:
        lines += 1
        if lines > max_header_lines:
            raise BadRequest(f"more than {max_header_lines} request header lines", status=431)
        if not allow_underscores and b"_" in name:
            continue
        cgi = _cgi_key(name.lower())
        if cgi in out:
            return _environ_headers_grouped(
                headers, max_header_lines=max_header_lines, allow_underscores=allow_underscores
            )
        out[cgi] = value.decode("latin-1")
    length = out.get("CONTENT_LENGTH")
    if length is not None:
        out["CONTENT_LENGTH"] = str(parse_content_length((length.encode("latin-1"),)))
    return out


def _environ_headers_grouped(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    max_header_lines: int,
    allow_underscores: bool,
) -> dict[str, str]:
    """:func:`_environ_headers` with repeats: lines grouped by lowercase name.

    A name seen once keeps its one value, not a list; groups become keys in the order
    of their first line; a later group with the same CGI key replaces the value.
    """
    grouped: dict[bytes, str | list[str]] = {}
    lines = 0
    for name, value in headers:
        lines += 1
        if lines > max_header_lines:
            raise BadRequest(f"more than {max_header_lines} request header lines", status=431)
        if not allow_underscores and b"_" in name:
            continue
        key = name.lower()
        text = value.decode("latin-1")
        seen = grouped.get(key)
        if seen is None:
            grouped[key] = text
        elif type(seen) is list:
            seen.append(text)
        else:
            grouped[key] = [cast("str", seen), text]
    out: dict[str, str] = {}
    for name, values in grouped.items():
        cgi = _cgi_key(name)
        if type(values) is str:
            if cgi == "CONTENT_LENGTH":
                length = parse_content_length((values.encode("latin-1"),))
                out[cgi] = str(length)
            else:
                out[cgi] = values
        elif cgi == "CONTENT_LENGTH":
            parse_content_length(v.encode("latin-1") for v in values)  # raises: repeated
        elif cgi == "CONTENT_TYPE":
            out[cgi] = values[-1]
        else:
            out[cgi] = _JOINERS.get(name, ", ").join(values)
    return out


def normalize_request_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI request headers as they look after a round trip through an environ.

    Repeated names become one line at the first one's place, joined like
    :func:`environ_from_scope` joins them; the last Content-Type wins; names
    with ``_`` are dropped; names are lowercased. This is what lets a
    middleware see the same headers under WSGI and ASGI. Linear time; the
    common case (no repeats, no ``_``) returns the lines unchanged.
    """
    listed = list(headers)
    names = [name for name, _value in listed]
    unique = set(names)
    joined = b"".join(names)
    simple = len(unique) == len(names) and b"_" not in joined and joined == joined.lower()
    if simple and (not unique & _BARE_HEADERS or _bare_headers_canonical(listed)):
        return listed
    return _regroup(listed)  # repeats, odd names, or a Content-Type/-Length to rewrite


def _bare_headers_canonical(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when :func:`_regroup` would keep these (unrepeated) lines as they are:
    a Content-Length in canonical digits, a non-empty Content-Type."""
    return all(_kept_as_is(name, value) for name, value in headers if name in _BARE_HEADERS)


def _kept_as_is(name: bytes, value: bytes) -> bool:
    """For an unrepeated Content-Length or Content-Type line: whether :func:`_regroup`
    keeps it as it is (canonical digits; a non-empty type)."""
    if name == b"content-length":
        return value.isdigit() and len(value) <= 19 and (value[:1] != b"0" or value == b"0")
    return bool(value)


def _regroup(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    grouped: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        key = name.lower()
        if b"_" in key:
            continue
        grouped.setdefault(key, []).append(value)
    out: list[tuple[bytes, bytes]] = []
    for name, values in grouped.items():
        if name == b"content-length":
            length = parse_content_length(values)
            out.append((name, str(length).encode("ascii")))
        elif name == b"content-type" or len(values) == 1:
            if values[-1] or name != b"content-type":  # an empty Content-Type is no Content-Type
                out.append((name, values[-1]))
        else:
            out.append((name, _JOINERS.get(name, ", ").encode("latin-1").join(values)))
    return out


_CGI_KEYS: dict[bytes, str] = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}


def _cgi_key(name: bytes) -> str:
    key = _CGI_KEYS.get(name)
    if key is None:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_CGI_KEYS) < 1024:
            _CGI_KEYS[name] = key
    return key


#: Header name -> the environ key holding it, or "" for names no environ key holds.
_LOOKUP_KEYS: Memo[bytes, str] = Memo(
    lambda name: "" if b"_" in name else _cgi_key(name), size=1024
)


def environ_key(name: bytes) -> str:
    """The environ key holding request header ``name`` (lowercase), or "" for a name no
    environ key holds (one with ``_``)."""
    return _LOOKUP_KEYS[name]


def environ_header(environ: Mapping[str, Any], name: bytes) -> bytes | None:
    """One request header of ``environ`` as :func:`headers_from_environ` gives it, or None.

    Constant time per name, so a middleware that reads a few headers does not
    translate them all. ``name`` is lowercase.
    """
    key = _LOOKUP_KEYS[name]
    return _environ_line(name, environ.get(key)) if key else None


def environ_lines_named(environ: Mapping[str, Any], names: frozenset[bytes]) -> dict[bytes, bytes]:
    """``{name: value}`` of the request headers of ``environ`` named in ``names``, each as
    :func:`environ_header` gives it (absent ones left out): one environ lookup per name,
    and a translation only for the keys present. :func:`scope_lines_named`' twin."""
    found: dict[bytes, bytes] = {}
    for name in names:
        value = environ.get(_LOOKUP_KEYS[name])  # "" (no environ key) is never a key
        if value is not None:
            line = _environ_line(name, value)
            if line is not None:
                found[name] = line
    return found


def _environ_line(name: bytes, value: Any) -> bytes | None:
    """Header ``name``'s value as an environ holds it (None: absent), as bytes."""
    if not value:
        # an empty CONTENT_TYPE / CONTENT_LENGTH means "absent" (see headers_from_environ)
        return None if value is None or name in _BARE_HEADERS else b""
    return value.encode("latin-1") if type(value) is str else str(value).encode("latin-1")


def scope_lines_named(
    headers: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]
) -> dict[bytes, bytes]:
    """``{name: value}`` of a scope's lines named in ``names``, as
    :func:`normalize_request_headers` gives them (raising its :class:`BadRequest` for
    a Content-Length it refuses). ``names`` are lowercase, without ``_``.

    One scan, no list built, in the usual case (lowercase names, none repeated, a
    Content-Length or Content-Type as the full rules keep it): anything else takes the
    full rules.
    """
    found: dict[bytes, bytes] = {}
    for key, value in headers:
        if key in names:
            if key in found or (key in _BARE_HEADERS and not _kept_as_is(key, value)):
                break  # repeated (joined), or rewritten or refused by the full rules
            found[key] = value
        elif not key.islower() and key.lower() in names:
            break
    else:
        return found
    return {key: value for key, value in normalize_request_headers(headers) if key in names}


def scope_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """One request header of a scope's lines as :func:`normalize_request_headers` gives
    it, or None. ``name`` is lowercase.

    One scan, no list built: servers send lowercase names (the ASGI spec asks them
    to), so the usual line is found as it is. A repeated name, a line that matches
    only when lowercased, or a Content-Type / -Length the full rules would rewrite or
    refuse take the full rules.
    """
    if b"_" in name:
        return None  # names with "_" are dropped
    size = len(name)
    found = None
    for key, value in headers:
        if key == name:
            if found is not None:
                break
            found = value
        elif len(key) == size and key.lower() == name:
            break
    else:
        if found is None or name not in _BARE_HEADERS or _kept_as_is(name, found):
            return found
    for key, value in normalize_request_headers(headers):
        if key == name:
            return value
    return None


def _header_name_of_key(key: str) -> bytes:
    """The request header an environ key holds (lowercase), or b"" for other keys."""
    if key.startswith("HTTP_"):
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            return b""  # CGI says the bare keys win; some servers send both
        return key[5:].lower().replace("_", "-").encode("latin-1")
    return _SPECIAL_ENVIRON_HEADERS.get(key, b"")


#: Environ key -> the header name it holds (b"" for none): keys, never their values.
_HEADER_NAMES: Memo[str, bytes] = Memo(_header_name_of_key, size=1024)


def headers_from_environ(environ: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The request headers of an environ as ASGI byte pairs, lowercase names."""
    name_of = _HEADER_NAMES
    return [
        (name, (value if type(value) is str else str(value)).encode("latin-1"))
        for key, value in environ.items()
        if (name := name_of[key]) and (value or name not in _BARE_HEADERS)
    ]  # an empty CONTENT_TYPE / CONTENT_LENGTH means "absent"


# -- scope -> environ ----------------------------------------------------------


def _server_address(scope: HTTPScope, host_header: str | None) -> tuple[str, str]:
    server = scope.get("server")
    default_port = "443" if scope.get("scheme") in ("https", "wss") else "80"
    if server is not None:
        return server[0], default_port if server[1] is None else str(server[1])
    if host_header:
        host, sep, port = host_header.rpartition(":")
        if sep and port.isdigit() and (not host.startswith("[") or host.endswith("]")):
            return host, port
        return host_header, default_port
    return "localhost", default_port


def _request_uri(scope: HTTPScope) -> str:
    # The spec allows servers to omit raw_path or send None; asgiref's type does not.
    raw_path = cast("bytes | None", scope.get("raw_path"))
    if raw_path is None:
        uri = quote_path(scope["path"]).decode("ascii")
    else:
        uri = raw_path.decode("latin-1")
    query = scope.get("query_string", b"")
    return uri + "?" + query.decode("latin-1") if query else uri


def environ_from_scope(
    scope: HTTPScope,
    *,
    wsgi_input: Any,
    wsgi_errors: Any,
    max_header_lines: int = DEFAULT_MAX_HEADER_LINES,
    allow_underscores_in_headers: bool = False,
    multiprocess: bool = False,
    file_wrapper: Any = None,
) -> Environ:
    """Build a PEP 3333 environ for an ASGI ``http`` scope.

    Raises :class:`BadRequest` (400 or 431) for requests that cannot be
    represented faithfully.
    """
    script_name, path_info = split_root_path(scope["path"], scope.get("root_path", ""))
    environ: Environ = _environ_headers(
        scope["headers"],
        max_header_lines=max_header_lines,
        allow_underscores=allow_underscores_in_headers,
    )
    server_name, server_port = _server_address(scope, environ.get("HTTP_HOST"))
    uri = _request_uri(scope)
    environ.update(
        {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": _wsgi_str(script_name),
            "PATH_INFO": _wsgi_str(path_info),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "REQUEST_URI": uri,
            "RAW_URI": uri,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": wsgi_input,
            "wsgi.errors": wsgi_errors,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "asgi.scope": scope,
        }
    )
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    if file_wrapper is not None:
        environ["wsgi.file_wrapper"] = file_wrapper
    return environ


# -- environ -> scope ----------------------------------------------------------


def _http_version(protocol: str) -> str:
    version = protocol.partition("/")[2]
    return version if version in ("1.0", "1.1", "2", "3") else "1.1"


def _port(value: Any) -> int | None:
    text = str(value)
    return int(text) if text.isdigit() else None


def _raw_path(environ: Mapping[str, Any], path: str) -> bytes:
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        raw = str(uri).partition("?")[0]
        if "://" in raw:  # absolute-form request target
            raw = "/" + raw.partition("://")[2].partition("/")[2]
        return raw.encode("latin-1", "replace")
    return quote_path(path)


RequestFields = tuple[
    str, str, str, str, bytes, bytes, "tuple[str, int] | None", "tuple[str, int | None]", str
]


_VERSION_OF: Final = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2": "2", "HTTP/3": "3"}


def request_fields_from_environ(environ: Mapping[str, Any]) -> RequestFields:
    """``(method, scheme, path, root_path, raw_path, query_string, client, server,
    http_version)`` of an environ, by the rules of :func:`scope_from_environ`.

    Raises :class:`BadRequest` (400) when SCRIPT_NAME or PATH_INFO is not UTF-8
    or the query string is not latin-1 text. Each field also has a function of
    its own below (``environ_method`` ...), for readers that need only some; this
    one reads them all in one pass, with the environ a server usually gives (str
    values, an ASCII path, no SCRIPT_NAME, a plain request target and port) read
    directly, and anything else through those functions, so the rules stay theirs.
    """
    get = environ.get
    path = get("PATH_INFO", "")
    root_path = get("SCRIPT_NAME", "")
    if root_path == "" and type(path) is str and path.isascii():
        pass  # already the decoded path, and there is no mount point
    else:
        root_path = environ_root_path(environ)
        path = root_path + _path_info(environ)
    uri = get("REQUEST_URI") or get("RAW_URI")
    if type(uri) is str and "?" not in uri and "://" not in uri:
        raw_path = uri.encode("latin-1", "replace")
    else:
        raw_path = _raw_path(environ, path)
    query = get("QUERY_STRING", "")
    query_string = b"" if query == "" else environ_query(environ)
    method = get("REQUEST_METHOD", "GET")
    if method not in _METHODS:
        method = str(method).upper()
    scheme = get("wsgi.url_scheme", "http")
    if type(scheme) is not str:
        scheme = str(scheme)
    client: tuple[str, int] | None = None
    remote = get("REMOTE_ADDR")
    if remote:
        port = get("REMOTE_PORT", 0)
        if type(remote) is str and type(port) is str and port.isdigit():
            client = (remote, int(port))
        else:
            client = environ_client(environ)
    name = get("SERVER_NAME", "localhost")
    port = get("SERVER_PORT")
    if type(name) is str and type(port) is str and port.isdigit():
        server: tuple[str, int | None] = (name, int(port))
    else:
        server = environ_server(environ)
    protocol = get("SERVER_PROTOCOL", "HTTP/1.1")
    version = _VERSION_OF.get(protocol) if type(protocol) is str else None
    if version is None:
        version = environ_http_version(environ)
    return (method, scheme, path, root_path, raw_path, query_string, client, server, version)


# One function per field: a middleware's request head translates the fields it reads.
# The common cases (str values, ASCII paths, a known protocol) come first in each.


def environ_method(environ: Mapping[str, Any]) -> str:
    """REQUEST_METHOD, upper-case (default GET)."""
    method = environ.get("REQUEST_METHOD", "GET")
    return method if method in _METHODS else str(method).upper()


def environ_scheme(environ: Mapping[str, Any]) -> str:
    """``wsgi.url_scheme`` (default http)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    return scheme if type(scheme) is str else str(scheme)


def environ_root_path(environ: Mapping[str, Any]) -> str:
    """SCRIPT_NAME decoded; :class:`BadRequest` when it is not UTF-8."""
    script_name = environ.get("SCRIPT_NAME", "")
    if type(script_name) is str and script_name.isascii():
        return script_name
    return _unicode_from_wsgi(script_name, "SCRIPT_NAME")


def environ_path(environ: Mapping[str, Any]) -> str:
    """The decoded full path (SCRIPT_NAME + PATH_INFO); :class:`BadRequest` when not UTF-8."""
    return environ_root_path(environ) + _path_info(environ)


def _path_info(environ: Mapping[str, Any]) -> str:
    path_info = environ.get("PATH_INFO", "")
    if type(path_info) is str and path_info.isascii():
        return path_info
    return _unicode_from_wsgi(path_info, "PATH_INFO")


def environ_raw_path(environ: Mapping[str, Any], path: str | None = None) -> bytes:
    """The request target's path as sent (from REQUEST_URI / RAW_URI, else ``path`` quoted)."""
    return _raw_path(environ, environ_path(environ) if path is None else path)


def environ_query(environ: Mapping[str, Any]) -> bytes:
    """QUERY_STRING as bytes; :class:`BadRequest` when it is not latin-1 text."""
    query = environ.get("QUERY_STRING", "")
    try:
        return query.encode("latin-1") if type(query) is str else str(query).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"request head is not latin-1 text: {exc.reason}") from None


def environ_client(environ: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(REMOTE_ADDR, REMOTE_PORT)`` (port 0 when unknown); None without an address."""
    remote = environ.get("REMOTE_ADDR")
    if not remote:
        return None
    port = environ.get("REMOTE_PORT", 0)
    port = int(port) if type(port) is str and port.isdigit() else _port(port)
    return (str(remote), port or 0)


def environ_server(environ: Mapping[str, Any]) -> tuple[str, int | None]:
    """``(SERVER_NAME, SERVER_PORT)``."""
    port = environ.get("SERVER_PORT")
    port = int(port) if type(port) is str and port.isdigit() else _port(port)
    return (str(environ.get("SERVER_NAME", "localhost")), port)


def environ_http_version(environ: Mapping[str, Any]) -> str:
    """The HTTP version of SERVER_PROTOCOL ("1.1" when unknown)."""
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    version = _VERSION_OF.get(protocol) if type(protocol) is str else None
    return version or _http_version(str(protocol))


#: Methods already in their canonical (upper-case) form.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def scope_from_environ(environ: Mapping[str, Any], *, with_headers: bool = True) -> HTTPScope:
    """Build an ASGI 3 ``http`` scope for a PEP 3333 environ.

    Raises :class:`BadRequest` (400) when SCRIPT_NAME or PATH_INFO is not
    UTF-8 or a header value cannot be represented as bytes. With
    ``with_headers=False`` the ``headers`` list is left empty, for callers
    that translate headers later (:func:`headers_from_environ`) or never.
    """
    method, scheme, path, root_path, raw_path, query, client, server, version = (
        request_fields_from_environ(environ)
    )
    try:
        headers = headers_from_environ(environ) if with_headers else []
    except UnicodeEncodeError as exc:
        raise BadRequest(f"request head is not latin-1 text: {exc.reason}") from None
    scope: HTTPScope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "extensions": {},
    }
    return scope


# -- rewritten scope fields -> an existing environ -------------------------------

_HEADER_KEYS: Final = ("CONTENT_TYPE", "CONTENT_LENGTH")


def apply_scope_fields_to_environ(
    environ: Environ,
    fields: Mapping[str, Any],
    changed: Iterable[str],
    *,
    max_header_lines: int = DEFAULT_MAX_HEADER_LINES,
    allow_underscores_in_headers: bool = False,
) -> None:
    """Write the ``changed`` scope fields (ASGI names) of ``fields`` into ``environ``.

    ``fields`` maps scope names to values (``path`` includes ``root_path``): the
    changed fields, and every field they combine with (a changed ``path`` needs
    ``root_path``, ``server`` the scheme). A name in ``changed`` that is not a
    scope field is skipped. The same rules as :func:`environ_from_scope` apply,
    so a middleware that rewrites a request gives a WSGI app the environ an
    ASGI server would have produced for the rewritten request.
    """
    linked: list[str] = []  # fields whose keys depend on other fields
    for name in changed:
        write = _ONE_KEY_WRITERS.get(name)
        if write is not None:
            write(environ, fields[name])
        elif name in _LINKED_FIELDS:  # anything else is not a scope field
            linked.append(name)
    if not linked:
        return
    if "headers" in linked:
        for key in [k for k in environ if k.startswith("HTTP_") or k in _HEADER_KEYS]:
            del environ[key]
        environ.update(
            _environ_headers(
                fields["headers"],
                max_header_lines=max_header_lines,
                allow_underscores=allow_underscores_in_headers,
            )
        )
    if "path" in linked or "root_path" in linked:
        script_name, path_info = split_root_path(fields["path"], fields["root_path"])
        environ["SCRIPT_NAME"] = _wsgi_str(script_name)
        environ["PATH_INFO"] = _wsgi_str(path_info)
    if "raw_path" in linked or "query_string" in linked:
        uri = _request_uri(cast("HTTPScope", fields))
        environ["REQUEST_URI"] = environ["RAW_URI"] = uri
        environ["QUERY_STRING"] = fields["query_string"].decode("latin-1")
    if "server" in linked:  # after the headers: it reads the Host header
        _set_server(environ, fields)


def _set_method(environ: Environ, method: str) -> None:
    environ["REQUEST_METHOD"] = method


def _set_scheme(environ: Environ, scheme: str) -> None:
    environ["wsgi.url_scheme"] = scheme


def _set_http_version(environ: Environ, version: str) -> None:
    environ["SERVER_PROTOCOL"] = "HTTP/" + version


def _set_client(environ: Environ, client: tuple[str, int] | None) -> None:
    if client is None:
        environ.pop("REMOTE_ADDR", None)
        environ.pop("REMOTE_PORT", None)
    else:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])


def _set_server(environ: Environ, fields: Mapping[str, Any]) -> None:
    host = environ.get("HTTP_HOST")
    name, port = _server_address(cast("HTTPScope", fields), host)
    environ["SERVER_NAME"] = name
    environ["SERVER_PORT"] = port


#: The fields whose environ keys depend on other fields too.
_LINKED_FIELDS: Final = frozenset(
    {"headers", "path", "root_path", "raw_path", "query_string", "server"}
)

#: The fields that each set environ keys of their own, whatever else changed.
_ONE_KEY_WRITERS: Final[dict[str, Callable[[Environ, Any], None]]] = {
    "method": _set_method,
    "scheme": _set_scheme,
    "http_version": _set_http_version,
    "client": _set_client,
}
