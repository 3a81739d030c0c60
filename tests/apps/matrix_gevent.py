"""gevent.pywsgi serving the matrix's FastAPI app, monkey-patched first as deployments do.

``python -m tests.apps.matrix_gevent PORT``; SIGTERM stops the server and exits.
"""

from gevent import monkey  # type: ignore[import-untyped]  # gevent ships no stubs

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped]  # noqa: E402

from tests.apps.matrix_apps import fastapi_wsgi  # noqa: E402


def main(port: int) -> None:
    server = WSGIServer(("127.0.0.1", port), fastapi_wsgi, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    fastapi_wsgi.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
