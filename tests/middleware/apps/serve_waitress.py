"""Run a WSGI app under waitress without its own proxy-header handling."""

from __future__ import annotations

import importlib
import sys

from waitress import serve

if __name__ == "__main__":
    module, _, name = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(module), name)
    serve(app, host="127.0.0.1", port=int(sys.argv[2]), clear_untrusted_proxy_headers=False)
