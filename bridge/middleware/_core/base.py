"""The :class:`Middleware` base class: one definition, two interfaces.

``X(app, **options)`` returns an app of the same interface as ``app``. The
instance's class is a per-interface subclass of ``X`` (made once per class and
interface) whose ``__call__`` *is* the WSGI driver or the ASGI driver, so
servers and frameworks that inspect ``__call__`` (uvicorn, hypercorn,
Starlette, Django) see a plain WSGI callable or a coroutine function, and a
request costs no extra dispatch.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, Self, TypeAlias

from bridge._http.apps import is_coroutine_app
from bridge.middleware._core.asgi_driver import run_asgi
from bridge.middleware._core.construction import loud_init, report_construction_error
from bridge.middleware._core.exchange import Answer, Exchange, Forward
from bridge.middleware._core.heads import RequestHead, Response
from bridge.middleware._core.wsgi_driver import run_wsgi

__all__ = ("Interface", "Middleware", "detect_interface", "spellings")

Interface: TypeAlias = Literal["wsgi", "asgi"]
_INTERFACES: Final = ("wsgi", "asgi")


def detect_interface(app: Any) -> Interface:
    """``"asgi"`` for an ASGI 3 app, ``"wsgi"`` for any other callable.

    An app is ASGI when it, or its ``__call__``, is a coroutine function
    (asgiref's ``markcoroutinefunction`` counts). Classes are refused: an
    ASGI 2 "class" app must be wrapped with
    ``asgiref.compatibility.guarantee_single_callable`` first.
    """
    if is_coroutine_app(app):
        return "asgi"
    if inspect.isclass(app):
        raise TypeError(
            f"{app!r} is a class, not an app: pass an instance, or wrap an ASGI 2 app "
            "with asgiref.compatibility.guarantee_single_callable"
        )
    if not callable(app):
        raise TypeError(f"{app!r} is not a WSGI or ASGI app (it is not callable)")
    return "wsgi"


def spellings(names: Iterable[str]) -> Mapping[bytes, str]:
    """``{lowercase name: name}`` for :attr:`Middleware.header_spellings`, made once at
    construction (names already validated as tokens)."""
    return MappingProxyType({name.lower().encode("latin-1"): name for name in names})


_variants: dict[tuple[type, str], type] = {}


def _variant(cls: type[Middleware], interface: Interface) -> type:
    found = _variants.get((cls, interface))
    if found is None:
        namespace = {
            "__call__": run_wsgi if interface == "wsgi" else run_asgi,
            "interface": interface,
            # Read by the drivers on every request: decide_request() skips the exchange machinery.
            # (Unless a subclass also overrides exchange(): then exchange() is what runs.)
            "decides": cls.decide_request is not Middleware.decide_request
            and cls.exchange is Middleware.exchange,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        }
        found = type(cls.__name__, (cls,), namespace)
        _variants[(cls, interface)] = found
    return found


class Middleware:
    """Base class of middleware written once for WSGI and ASGI.

    Subclasses validate and precompute their options in ``__init__`` (calling
    ``super().__init__(app, interface=interface, clock=clock)``) and implement
    :meth:`exchange`.

    Options every middleware takes:

    * ``interface``: ``"wsgi"`` or ``"asgi"`` to override detection of
      ``app``'s interface (default: detected, see :func:`detect_interface`).
    * ``clock``: a function returning seconds, used for ``Exchange.now``
      (default ``time.monotonic``; tests pass a fake clock).

    .. versionadded:: 0.1
    """

    #: ASGI scope types given to :meth:`exchange`; others (lifespan, and
    #: websocket unless listed) pass through untouched.
    scope_types: ClassVar[frozenset[str]] = frozenset({"http"})
    #: A websocket handshake refused by a ``Respond`` gets that response (status,
    #: headers, body) where the server offers the ``websocket.http.response``
    #: extension; otherwise, and by default, it is closed before accept (the
    #: server answers 403).
    websocket_denial_response: ClassVar[bool] = False
    #: An accepted websocket handshake's ``websocket.accept`` headers pass through
    #: ``Exchange.response`` (as a 101 head), so the fields it adds reach the client
    #: (ASGI servers send the accept's ``headers`` on the 101). Default: untouched.
    websocket_accept_headers: ClassVar[bool] = False
    #: Schemes (``scope["scheme"]``, ``environ["wsgi.url_scheme"]``) of HTTP requests this
    #: middleware passes through untouched whatever else they hold: the drivers then call
    #: the app without building a head (HTTPSRedirect: ``https``). A request whose path
    #: cannot be translated still gets the same 400 as under any middleware.
    passes_schemes: ClassVar[frozenset[str]] = frozenset()

    #: Response header names this middleware sets (lowercase bytes, as its lines hold
    #: them) -> the spelling a WSGI server gets: the case the user configured, or the
    #: usual one (``Vary``). Under ASGI the lines keep their lowercase names.
    header_spellings: Mapping[bytes, str] = MappingProxyType({})

    interface: Interface
    decides: bool  # set per variant: the class overrides decide_request()
    app: Any
    clock: Callable[[], float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not hasattr(init, "__bridge_loud__"):
            cls.__init__ = loud_init(init)  # type: ignore[method-assign]

    def __new__(cls, app: Any = None, *args: Any, **kwargs: Any) -> Self:
        if app is None and "app" in kwargs:
            app = kwargs["app"]
        interface = kwargs.get("interface")
        try:
            if interface is None:
                interface = detect_interface(app)
            elif interface not in _INTERFACES:
                raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        except Exception as exc:
            report_construction_error(cls.__name__, exc)
            raise
        instance: Self = object.__new__(_variant(cls, interface))
        return instance

    def __init__(
        self,
        app: Any,
        *,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be a function returning seconds, not {clock!r}")
        self.app = app
        self.clock = clock

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        """The per-request exchange for ``head``, or None to pass it through untouched.

        The default wraps :meth:`decide_request` for a middleware that implements that instead.
        """
        if not self.decides:
            raise NotImplementedError(f"{type(self).__qualname__} must implement exchange()")
        decided = self.decide_request(head, now)
        if decided is None:
            return None
        if isinstance(decided, Response):
            return Answer(head, now, decided)
        return _Decided(head, now, decided)

    def decide_request(self, head: RequestHead, now: float) -> RequestHead | Response | None:
        """Optional, instead of :meth:`exchange`, for a middleware that only looks at the
        request head: None passes the request through untouched, a head forwards the
        request rewritten, a :class:`Response` answers it now. The drivers then
        allocate no exchange, which makes it the cheapest kind of middleware.

        .. versionadded:: 0.1
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement decide_request()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Replaced by the driver in each per-interface subclass made by __new__. Typed to
        # take keywords too, so an instance type-checks where a WSGI or ASGI callable with
        # named parameters is expected (``app.wsgi_app = RateLimit(app.wsgi_app)`` in Flask).
        raise TypeError(f"{type(self).__qualname__} was not created through its class")

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} ({self.interface}) around {self.app!r}>"


class _Decided(Exchange):
    """The head :meth:`Middleware.decide_request` forwards, as a request-only exchange."""

    __slots__ = ("decided",)

    def __init__(self, head: RequestHead, now: float, decided: RequestHead) -> None:
        super().__init__(head, now)
        self.decided = decided

    def request(self) -> Forward:
        return Forward(self.decided)
