"""gevent.pywsgi serving the matrix's FastAPI app, monkey-patched first as deployments do.

``python -m tests.apps.matrix_gevent PORT [MODULE:APP]`` (the app defaults to the matrix's
``tests.apps.matrix_apps:fastapi_wsgi``); SIGTERM stops the server and exits.
"""

from gevent import monkey  # type: ignore[import-untyped]  # gevent ships no stubs

monkey.patch_all()

import importlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped]  # noqa: E402


def main(port: int, target: str = "tests.apps.matrix_apps:fastapi_wsgi") -> None:
    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name)
    server = WSGIServer(("127.0.0.1", port), app, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    close = getattr(app, "close", None)
    if close is not None:
        close()


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:])
