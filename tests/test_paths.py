"""The options language's sans-IO rules: path patterns, app paths, quoting, methods."""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge._http.options import UNSET, http_methods, renamed_option
from bridge._http.paths import (
    PathPattern,
    app_path,
    exempt_matcher,
    path_pattern,
    path_patterns,
    quote_path,
)

CASES = [
    # pattern, path, matches
    pytest.param("/api", "/api", True, id="prefix-itself"),
    pytest.param("/api", "/api/", True, id="prefix-slash"),
    pytest.param("/api", "/api/x/y", True, id="prefix-below"),
    pytest.param("/api", "/apix", False, id="prefix-segment-boundary"),
    pytest.param("/api", "/", False, id="prefix-root"),
    pytest.param("/api/", "/api", True, id="prefix-trailing-slash-ignored"),
    pytest.param("/", "/anything/at/all", True, id="slash-matches-all"),
    pytest.param("=/healthz", "/healthz", True, id="exact"),
    pytest.param("=/healthz", "/healthz/", False, id="exact-no-slash"),
    pytest.param("=/healthz", "/healthz/live", False, id="exact-no-below"),
    pytest.param("=/", "/", True, id="exact-root"),
    pytest.param("=/", "/x", False, id="exact-root-only"),
    pytest.param(re.compile(r"/items/\d+"), "/items/7/edit", True, id="regex-at-start"),
    pytest.param(re.compile(r"/items/\d+$"), "/items/7/edit", False, id="regex-anchored"),
    pytest.param(re.compile(r"/items/\d+"), "/shop/items/7", False, id="regex-not-search"),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_path_pattern_matches(pattern: str | re.Pattern[str], path: str, expected: bool) -> None:
    assert path_pattern(pattern, "exempt").matches(path) is expected


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        pytest.param("healthz", ValueError, "must start with '/'", id="relative"),
        pytest.param("=healthz", ValueError, "must start with '/'", id="exact-relative"),
        pytest.param("", ValueError, "must start with '/'", id="empty"),
        pytest.param("/a*/b", ValueError, "not a wildcard", id="star-inside"),
        pytest.param("=/a*", ValueError, "not a wildcard", id="star-exact"),
        pytest.param(b"/api", TypeError, "not bytes", id="bytes"),
        pytest.param(3, TypeError, "not int", id="int"),
        pytest.param(re.compile(rb"/x"), TypeError, "of str, not bytes", id="bytes-regex"),
    ],
)
def test_bad_patterns_say_what_to_write(spec: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        path_pattern(spec, "exempt[0]")
    assert str(caught.value).startswith("exempt[0]: ")


def test_deprecated_star_spellings_warn_and_keep_their_meaning() -> None:
    with pytest.warns(DeprecationWarning, match=r"write '/api'") as caught:
        star = path_pattern("/api/*", "path")
    assert caught[0].filename == __file__  # attributed to the caller outside bridge
    assert star == PathPattern("prefix", "/api")
    with pytest.warns(DeprecationWarning, match=r"re.compile\('/api'\)"):
        glob = path_pattern("/api*", "path")
    assert [glob.matches(p) for p in ("/api", "/apix", "/api/x", "/ap")] == [
        True,
        True,
        True,
        False,
    ]


def test_path_patterns_take_one_pattern_or_a_list() -> None:
    assert path_patterns("/a", "exempt") == (PathPattern("prefix", "/a"),)
    assert path_patterns(["/a", "=/b"], "exempt") == (
        PathPattern("prefix", "/a"),
        PathPattern("exact", "/b"),
    )
    assert path_patterns(None, "exempt") == ()
    with pytest.raises(ValueError, match=r"exempt\[1\]: "):
        path_patterns(["/a", "b"], "exempt")


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        pytest.param("/mnt/healthz", "/mnt", "/healthz", id="below"),
        pytest.param("/mnt", "/mnt", "/", id="the-mount-point"),
        pytest.param("/mnt/x", "/mnt/", "/x", id="root-with-slash"),
        pytest.param("/mntx/y", "/mnt", "/mntx/y", id="not-owned-at-boundary"),
        pytest.param("/healthz", "/mnt", "/healthz", id="older-convention"),
        pytest.param("/x", "", "/x", id="unmounted"),
        pytest.param("", "", "/", id="empty"),
    ],
)
def test_app_path(path: str, root_path: str, expected: str) -> None:
    assert app_path(path, root_path) == expected


def test_exempt_matcher_reads_below_the_mount_point() -> None:
    exempt = exempt_matcher(["/healthz"])
    assert exempt is not None
    assert exempt(SimpleNamespace(path="/mnt/healthz/live", root_path="/mnt"))
    assert not exempt(SimpleNamespace(path="/healthz-app/x", root_path="/healthz-app"))
    assert not exempt(SimpleNamespace(path="/mnt/other", root_path="/mnt"))
    assert exempt_matcher(None) is None
    assert exempt_matcher([]) is None

    def predicate(head: object) -> bool:
        return True

    assert exempt_matcher(predicate) is predicate


def test_quote_path() -> None:
    assert quote_path("/a b/caf\u00e9;x=1") == b"/a%20b/caf%C3%A9;x=1"
    assert quote_path("/50%") == b"/50%25"
    assert quote_path("/a%2Fb c", keep_escapes=True) == b"/a%2Fb%20c"


@given(
    st.text(alphabet=st.sampled_from("aZ09_.~/;=,:@!$&'()*+-% \u00e9\n?#"), max_size=12),
    st.booleans(),
)
def test_quote_path_agrees_with_quote(path: str, keep_escapes: bool) -> None:
    """A path made of safe characters only is returned without calling quote(): the
    same bytes quote() gives."""
    safe = "/;=,:@!$&'()*+~" + ("%" if keep_escapes else "")
    expected = quote(path, safe=safe).encode("ascii")
    assert quote_path(path, keep_escapes=keep_escapes) == expected


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        pytest.param("POST", {"POST"}, id="one"),
        pytest.param("get, Post", {"GET", "POST"}, id="comma-list"),
        pytest.param(["put", "PATCH"], {"PUT", "PATCH"}, id="list"),
        pytest.param({"DELETE"}, {"DELETE"}, id="set"),
        pytest.param(None, None, id="every-method"),
    ],
)
def test_http_methods(methods: object, expected: set[str] | None) -> None:
    assert http_methods(methods) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(
    ("methods", "error", "message"),
    [
        pytest.param("GET;POST", ValueError, "not an HTTP method", id="semicolon"),
        pytest.param(["GET,POST"], ValueError, "not an HTTP method", id="comma-in-item"),
        pytest.param(["GET", 1], ValueError, "not an HTTP method", id="not-str"),
        pytest.param("", ValueError, "not an HTTP method", id="empty-str"),
        pytest.param([], ValueError, "is empty", id="empty-list"),
        pytest.param(b"POST", TypeError, "give a method", id="bytes"),
        pytest.param(7, TypeError, "give a method", id="int"),
    ],
)
def test_bad_methods_say_what_to_write(
    methods: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        http_methods(methods, "rules[0].methods")


def test_renamed_option() -> None:
    assert renamed_option("X", "old", UNSET, "new", ["/a"]) == ["/a"]
    with pytest.warns(DeprecationWarning, match=r"X\(old=\.\.\.\) is deprecated.*use new="):
        assert renamed_option("X", "old", ["/b"], "new", None) == ["/b"]
    with pytest.raises(TypeError, match="give new= only"):  # before any warning
        renamed_option("X", "old", ["/b"], "new", ["/a"])
