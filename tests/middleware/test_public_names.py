"""The public names of the middleware area exist, and are where the docs say."""

from __future__ import annotations

import bridge
import bridge.middleware
import bridge.testing


def test_all_is_honest() -> None:
    for module in (bridge, bridge.middleware, bridge.testing):
        for name in module.__all__:
            assert getattr(module, name, None) is not None, (module.__name__, name)


def test_top_level_names() -> None:
    assert bridge.ProxyHeaders is bridge.middleware.ProxyHeaders
    assert bridge.SecurityHeaders is bridge.middleware.SecurityHeaders
    assert bridge.CustomHeaders is bridge.middleware.CustomHeaders
    assert bridge.testing.call_wsgi is not None
    for name in ("ProxyHeaders", "SecurityHeaders", "CustomHeaders", "testing"):
        assert name in bridge.__all__


def test_public_classes_are_documented() -> None:
    for obj in (
        bridge.ProxyHeaders,
        bridge.SecurityHeaders,
        bridge.CustomHeaders,
        bridge.middleware.Middleware,
        bridge.middleware.Exchange,
        bridge.middleware.RequestHead,
        bridge.middleware.Response,
        bridge.middleware.stack,
        bridge.testing.call_wsgi,
        bridge.testing.call_asgi,
        bridge.testing.Request,
        bridge.testing.InnerApp,
    ):
        assert obj.__doc__, obj


def test_old_exports_warn_and_name_their_new_home() -> None:
    import warnings

    from bridge.middleware._core import heads

    for name in ("head_from_environ", "head_from_scope", "scope_with_head", "environ_with_head"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert getattr(bridge.middleware, name) is getattr(heads, name)
        assert [w.category for w in caught] == [DeprecationWarning]
        assert "bridge.middleware._core.heads" in str(caught[0].message)
        assert name not in bridge.middleware.__all__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bridge.middleware.VALUE_PREFIX == "bridge."
    assert [w.category for w in caught] == [DeprecationWarning]
    try:
        bridge.middleware.no_such_name  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("unknown names must raise AttributeError")
