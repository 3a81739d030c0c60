"""Sans-IO: merge a token into a response's Vary header.

Invariant: the result has at most one Vary line, holding the app's tokens in
their order (duplicates dropped, case-insensitively) followed by the new one,
so a middleware never adds a second Vary line nor drops one the app set.
``Vary: *`` already varies on everything and is kept as it is.
"""

from __future__ import annotations

from bridge.middleware._core.heads import Headers, header_values, set_header

__all__ = ("merge_vary",)


def merge_vary(headers: Headers, token: bytes) -> Headers:
    """``headers`` whose single Vary line also names ``token`` (e.g. ``b"Origin"``)."""
    for pair in headers:
        name = pair[0]
        if len(name) == 4 and name.lower() == b"vary":
            break
    else:  # the usual case: no Vary line yet (one loop, no list made)
        return (*headers, (b"vary", token))
    lines = header_values(headers, b"vary")
    tokens: list[bytes] = []
    seen: set[bytes] = set()
    for line in lines:
        for item in line.split(b","):
            item = item.strip()
            if item and item.lower() not in seen:
                seen.add(item.lower())
                tokens.append(item)
    if b"*" in seen:
        tokens = [b"*"]
    elif token.lower() not in seen:
        tokens.append(token)
    merged = b", ".join(tokens)
    if len(lines) == 1 and lines[0] == merged:
        return headers
    return set_header(headers, b"vary", merged)
