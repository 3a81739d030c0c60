"""waitress serving the matrix's FastAPI app, as docs/asgi_to_wsgi.md's recipe does.

``python -m tests.apps.matrix_waitress PORT``. Two settings users need with bridge:
SIGTERM becomes a normal exit (waitress dies on it without running interpreter exit,
so lifespan shutdown would not run), and ``clear_untrusted_proxy_headers=False`` lets
X-Forwarded-* reach ProxyHeaders (by default waitress removes them before the app).
"""

import signal
import sys

from waitress import serve

from tests.apps.matrix_apps import fastapi_wsgi


def main(port: int) -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    serve(
        fastapi_wsgi,
        listen=f"127.0.0.1:{port}",
        threads=8,
        clear_untrusted_proxy_headers=False,
        _quiet=True,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
