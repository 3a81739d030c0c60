"""The layout of issue 13 item 8: WSGI-side RequestBuffering inside ``WsgiToAsgi``.

``wsgi_buffered``: ``WsgiToAsgi(flask_wsgi)``, where ``flask_wsgi`` (from
tests/apps/buffering_apps.py) is Flask with ``RequestBuffering`` on its ``wsgi_app``,
configured by the same environment variables.
"""

from bridge import WsgiToAsgi
from tests.apps.buffering_apps import flask_wsgi

wsgi_buffered = WsgiToAsgi(flask_wsgi)
