"""Limits declared next to the route: a decorator for views and a FastAPI dependency.

Theory of operation
-------------------
``@limit("5/minute")`` on a Flask, Django or Starlette view (sync or async),
or ``Depends(limit("5/minute").dependency)`` in FastAPI, checks the route's
limit when the framework calls the view, after its routing and its own
middleware (so a key can be ``request.user``). It finds the
:class:`~bridge.ratelimit._route_link.RouteLink` that
``RateLimit(..., routes=True)`` put on the request, and through it the
middleware's store, algorithm, default key, cost and rejection. One check is
one store call (one Redis round trip): the sync client in a sync view, the
async one in an async view under ASGI. The decision goes on the request as
the middleware's does (``environ`` / ``scope["bridge.ratelimit"]``); its
fields, or its rejection, go on the link, and the middleware puts them on
the response, so the bytes are those of a middleware rule.

The rule of a route is compiled once per middleware and limit (a limit
computed per request compiles once per distinct value; the cache is bounded).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, Final, ParamSpec, TypeAlias, TypeVar, cast

from bridge.middleware import RequestHead, Respond, Response
from bridge.ratelimit._decision import DECISION_KEY, LimitDecision
from bridge.ratelimit._keys import KeyFunc, safe_key
from bridge.ratelimit._middleware import RateLimit
from bridge.ratelimit._rates import Rate
from bridge.ratelimit._rejection import Rejection
from bridge.ratelimit._route_link import ROUTE_KEY, RouteLink
from bridge.ratelimit._rules import CompiledRule, Rule, compile_rule
from bridge.ratelimit._store import Verdict

__all__ = ("RouteLimit", "RouteRequest", "limit")

P = ParamSpec("P")
R = TypeVar("R")

#: What a computed limit returns: a rate string, a Rate, several, or None (not limited).
LimitValue: TypeAlias = "str | Rate | list[str | Rate] | tuple[str | Rate, ...] | None"
#: A route's key function: the middleware's kind (of the head), or one of the route's request.
RouteKey: TypeAlias = "Callable[[RouteRequest], str | None] | KeyFunc"
RouteCost: TypeAlias = "int | Callable[[RouteRequest], int]"
RouteLimitSpec: TypeAlias = "str | Rate | list[str | Rate] | Callable[[RouteRequest], LimitValue]"

_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.:/@+-]")
#: Distinct computed limits compiled per route (plans, not clients: a handful).
_MAX_COMPILED: Final = 256


class RouteRequest:
    """What a route-level key, cost or limit function receives.

    It reads like the request head (``method``, ``path``, ``headers``,
    ``client``, :meth:`header`), so the middleware's key functions work on
    it, and adds what only the view has: ``request``, the framework's request
    object (Flask's ``flask.request``, Django's ``HttpRequest``, Starlette's
    ``Request``), and ``env``, the environ (WSGI) or scope (ASGI) it reads.
    """

    __slots__ = ("env", "head", "request")

    def __init__(self, head: RequestHead, request: Any, env: MutableMapping[str, Any]) -> None:
        self.head = head
        self.request = request
        self.env = env

    @property
    def method(self) -> str:
        return self.head.method

    @property
    def path(self) -> str:
        return self.head.path

    @property
    def root_path(self) -> str:
        return self.head.root_path

    @property
    def query_string(self) -> bytes:
        return self.head.query_string

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self.head.headers

    @property
    def client(self) -> tuple[str, int] | None:
        return self.head.client

    @property
    def scheme(self) -> str:
        return self.head.scheme

    @property
    def server(self) -> tuple[str, int | None] | None:
        return self.head.server

    @property
    def host(self) -> str | None:
        return self.head.host

    @property
    def values(self) -> Mapping[str, Any]:
        """The per-request values bridge middleware attached (as on the head)."""
        return self.head.values

    def header(self, name: bytes) -> bytes | None:
        """The first value of request header ``name`` (lowercase bytes), or None."""
        return self.head.header(name)

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of request header ``name`` (lowercase bytes), in order."""
        return self.head.header_values(name)


class _Compiled:
    """A route's rule for one middleware, and the key and cost it applies."""

    __slots__ = ("by_address", "cost", "key", "limiter", "rule")

    def __init__(self, limiter: RateLimit, rule: CompiledRule, key: Any, cost: Any) -> None:
        self.limiter = limiter
        self.rule = rule
        self.key: Callable[[Any], str | None] | None = key  # None: the middleware's, on the head
        self.cost = cost
        self.by_address = rule.keys_by_address


class _Check:
    """One route check in progress: what the store is asked, and what to do with its answer."""

    __slots__ = ("args", "compiled", "env", "key", "link")

    def __init__(
        self,
        link: RouteLink,
        env: MutableMapping[str, Any],
        compiled: _Compiled,
        key: str,
        args: tuple[str, tuple[Rate, ...], str, int, float],
    ) -> None:
        self.link = link
        self.env = env
        self.compiled = compiled
        self.key = key
        self.args = args

    def settle(self, verdict: Verdict) -> LimitDecision | Response:
        """The decision (put on the request) or the rejection (left on the link)."""
        limiter, rule, link = self.link.limiter, self.compiled.rule, self.link
        decided = limiter.decide(link.head, rule, self.key, verdict)
        if isinstance(decided, Respond):
            link.rejection = decided.response
            return decided.response
        decision: LimitDecision = decided.head.values[DECISION_KEY]
        self.env[DECISION_KEY] = decision
        if limiter.headers and verdict.outcomes:
            link.add_fields(limiter.fields(rule, verdict))
        return decision


class RouteLimit:
    """A limit for one route; see :func:`limit`."""

    def __init__(
        self,
        limit: RouteLimitSpec | None,
        *,
        key: RouteKey | None = None,
        cost: RouteCost | None = None,
        name: str | None = None,
        rejection: Rejection = None,
        methods: str | Collection[str] | None = None,
    ) -> None:
        self._computed = callable(limit) and not isinstance(limit, Rate)
        if key is not None and not callable(key):
            raise TypeError(f"limit(): key must be a function of the request, not {key!r}")
        # Everything but a computed limit is checked now, as a Rule's options are.
        checked = compile_rule(
            Rule(
                None if self._computed else cast(Any, limit),
                methods=methods,
                cost=cast(Any, cost),
                name=name,
                rejection=rejection,
            ),
            "gcra",
            _no_key,
            1,
            "limit(): ",
        )
        self.limit = limit
        self.key = key
        self.cost = cost
        self.name = name
        self.rejection = rejection
        self._methods = checked.methods
        self._compiled: dict[tuple[int, Any, str], _Compiled] = {}
        self._dependency: Callable[..., Awaitable[LimitDecision | None]] | None = None

    # -- the forms -----------------------------------------------------------------

    def __call__(self, view: Callable[P, R]) -> Callable[P, R]:
        """Decorate a Flask, Django or Starlette view (sync or async)."""
        if not callable(view):
            raise TypeError(f"limit() decorates a view function, not {view!r}")
        name = self.name or _view_name(view)
        if inspect.iscoroutinefunction(view):
            async_view = cast(Callable[P, Awaitable[Any]], view)

            @functools.wraps(view)
            async def limited_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                request, env = _framework_request(args)
                refused = await self.check_async(request, env, name)
                if isinstance(refused, Response):
                    return _placeholder(request, refused)
                return await async_view(*args, **kwargs)

            return cast(Callable[P, R], limited_async)

        @functools.wraps(view)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            request, env = _framework_request(args)
            refused = self.check_sync(request, env, name)
            if isinstance(refused, Response):
                return cast(R, _placeholder(request, refused))
            return view(*args, **kwargs)

        return limited

    @property
    def dependency(self) -> Callable[..., Awaitable[LimitDecision | None]]:
        """The FastAPI dependency: ``Depends(limit("5/minute").dependency)``.

        It returns the request's :class:`~bridge.ratelimit.LimitDecision`
        (None when the limit does not apply), and on a refusal raises an
        ``HTTPException`` whose response the middleware replaces with its own
        rejection.
        """
        if self._dependency is not None:  # one function: FastAPI runs it once per request
            return self._dependency
        from starlette.exceptions import HTTPException
        from starlette.requests import Request

        async def rate_limited(request: Request) -> LimitDecision | None:
            endpoint = request.scope.get("endpoint")
            name = self.name or (_view_name(endpoint) if endpoint else "route")
            refused = await self.check_async(request, request.scope, name)
            if isinstance(refused, Response):
                raise HTTPException(refused.status)
            return refused

        # FastAPI reads the parameter's class from the annotations: this module's
        # postponed annotations are strings it could not resolve here.
        rate_limited.__annotations__ = {"request": Request, "return": LimitDecision | None}
        self._dependency = rate_limited
        return rate_limited

    # -- the check -----------------------------------------------------------------

    def check_sync(
        self, request: Any, env: MutableMapping[str, Any], name: str
    ) -> LimitDecision | Response | None:
        """Check the route's limit with the store's blocking client (a sync view)."""
        check = self._prepare(request, env, name)
        if check is None:
            return None
        store = check.link.limiter.store
        return check.settle(store.check(*check.args))

    async def check_async(
        self, request: Any, env: MutableMapping[str, Any], name: str
    ) -> LimitDecision | Response | None:
        """Check the route's limit from an async view: awaited under ASGI; under WSGI
        (Flask's async views run in a private loop per request) the blocking client."""
        check = self._prepare(request, env, name)
        if check is None:
            return None
        store = check.link.limiter.store
        if store.local or not check.link.asgi:
            return check.settle(store.check(*check.args))
        return check.settle(await store.check_async(*check.args))

    def _prepare(self, request: Any, env: MutableMapping[str, Any], name: str) -> _Check | None:
        link = env.get(ROUTE_KEY)
        if not isinstance(link, RouteLink):
            raise RuntimeError(
                f"limit() on route {name!r} found no RateLimit(..., routes=True) around the "
                "app: wrap the app in RateLimit(app, ..., routes=True) (the route's limit "
                "uses its store and its response headers)"
            )
        head = link.head
        if self._methods is not None and head.method not in self._methods:
            return None
        route_request = RouteRequest(head, request, env)
        compiled = self._rule(link.limiter, route_request, name)
        if compiled is None or not compiled.rule.rates:
            return None
        raw_key = _raw_key(compiled.key, link, route_request)
        if raw_key is None:
            if compiled.by_address and not (head.client and head.client[0]):
                link.limiter._missing_address(head, compiled.rule)
            return None
        cost = compiled.cost
        if not isinstance(cost, int):
            cost = cost(route_request if self.cost is not None else head)
            if not isinstance(cost, int) or cost < 0:
                raise ValueError(f"route {name!r}: cost function returned {cost!r}")
        key = safe_key(raw_key)
        rule = compiled.rule
        limiter = link.limiter
        args = (rule.key_prefix + key, rule.rates, limiter.algorithm, cost, limiter.clock())
        return _Check(link, env, compiled, key, args)

    def _rule(self, limiter: RateLimit, request: RouteRequest, name: str) -> _Compiled | None:
        """The route's compiled rule under ``limiter`` (None: not limited this time)."""
        value: Any = self.limit
        if self._computed:
            value = cast(Callable[[RouteRequest], LimitValue], value)(request)
            if value is None:
                return None
            if isinstance(value, list):
                value = tuple(value)
        cache_key = (id(limiter), value, name)
        found = self._compiled.get(cache_key)
        if found is not None and found.limiter is limiter:
            return found
        compiled = self._compile(limiter, value, name)
        if len(self._compiled) >= _MAX_COMPILED:
            # Bounded: more distinct limits than plans could explain start the cache over.
            # (Plain dict operations: threads of a sync server share this safely.)
            self._compiled.clear()
        self._compiled[cache_key] = compiled
        return compiled

    def _compile(self, limiter: RateLimit, value: Any, name: str) -> _Compiled:
        defaults = limiter.route_limits
        assert defaults is not None  # a link exists only when routes=True
        where = f"limit() on route {name!r}: "
        if self._computed and not isinstance(value, str | Rate | tuple):
            raise TypeError(
                f"{where}the limit function returned {value!r}; return a rate such as "
                "'100/hour', a Rate, a list of them, or None (not limited)"
            )
        rule = Rule(
            cast(Any, list(value) if isinstance(value, tuple) else value),
            key=cast(Any, self.key),
            name=name,
            rejection=self.rejection,
        )
        compiled = compile_rule(
            rule, limiter.algorithm, defaults.key, defaults.cost, where, defaults.rejection
        )
        cost = self.cost if self.cost is not None else defaults.cost
        return _Compiled(limiter, compiled, self.key, cost)


def _raw_key(
    key: Callable[[Any], str | None] | None, link: RouteLink, request: RouteRequest
) -> str | None:
    """The raw key: the route's own key function of the route request, else the
    middleware's of the head (the same bucket a middleware rule would use)."""
    if key is None:
        assert link.limiter.route_limits is not None
        return link.limiter.route_limits.key(link.head)
    return key(request)


def _no_key(head: RequestHead) -> str | None:
    return None


def _view_name(view: Any) -> str:
    """A rule name from the view's qualified name (the prefix of its store keys)."""
    view = inspect.unwrap(view) if callable(view) else view
    qualified = f"{getattr(view, '__module__', '')}.{getattr(view, '__qualname__', repr(view))}"
    name = "route:" + _SAFE_NAME.sub("_", qualified.lstrip("."))
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name[:51] + "+" + digest


def _framework_request(args: tuple[Any, ...]) -> tuple[Any, MutableMapping[str, Any]]:
    """The framework's request among a view's arguments (Flask's is a context global)
    and the environ or scope it reads."""
    for arg in args[:2]:  # the request, or (self, request) in a class-based view
        scope = getattr(arg, "scope", None)
        if isinstance(scope, dict) and hasattr(arg, "method"):  # Starlette; Django ASGI
            return arg, scope
        meta = getattr(arg, "META", None)
        if isinstance(meta, dict) and hasattr(arg, "method"):  # Django WSGI
            return arg, meta
    try:
        import flask
    except ImportError:  # pragma: no cover - only without Flask installed
        flask = None  # type: ignore[assignment]
    if flask is not None and flask.has_request_context():
        return flask.request, flask.request.environ
    raise RuntimeError(
        "limit() found no request: decorate a Flask view, a Django view (taking the "
        "request) or a Starlette endpoint (taking the Request); in FastAPI use "
        "Depends(limit(...).dependency)"
    )


def _placeholder(request: Any, rejection: Response) -> Any:
    """The framework's own response for a refused request; the middleware replaces it
    with ``rejection`` (status, fields and body), so only its status matters."""
    module = type(request).__module__
    if module.startswith("django."):
        from django.http import HttpResponse  # type: ignore[import-untyped]

        return HttpResponse(status=rejection.status)
    if module.startswith(("starlette.", "fastapi.")):
        from starlette.responses import Response as StarletteResponse

        return StarletteResponse(status_code=rejection.status)
    return ("", rejection.status)  # Flask: a (body, status) view return


def limit(
    limit: RouteLimitSpec | None,
    /,
    *,
    key: RouteKey | None = None,
    cost: RouteCost | None = None,
    name: str | None = None,
    rejection: Rejection = None,
    methods: str | Collection[str] | None = None,
) -> RouteLimit:
    """A limit declared next to the route, checked when the view is called.

    ``@limit("5/minute")`` decorates a Flask, Django or Starlette view, sync or
    async; in FastAPI, ``Depends(limit("5/minute").dependency)``. The app must
    be wrapped in ``RateLimit(app, ..., routes=True)``: the route's check uses
    that middleware's store, algorithm, default key, cost and rejection, and
    the middleware adds the route's ``RateLimit`` / ``RateLimit-Policy``
    fields to the response (or sends its 429). The decision is on the request
    (``environ`` / ``scope["bridge.ratelimit"]``) when the view runs.

    :param limit: a rate string (``"5/minute;100/day"``), a :class:`Rate`, a
        list of them, or a function of the :class:`RouteRequest` returning one
        of those or None (not limited): a limit per plan, computed per request.
    :param key: the route's key: a function of the :class:`RouteRequest`
        (``request.user``, ``request.state``...), or any middleware key function
        (default: the middleware's, on the request head).
    :param cost: units a request uses: an int or a function of the
        :class:`RouteRequest` (default: the middleware's).
    :param name: names the route's counters (default ``route:`` and the view's
        qualified name); routes with the same name and limit share them.
    :param rejection: the route's refusal, as for a ``Rule`` (default: the
        middleware's).
    :param methods: only these methods are limited (default: all).

    .. versionadded:: 0.3
    """
    return RouteLimit(limit, key=key, cost=cost, name=name, rejection=rejection, methods=methods)
