"""A Django project served under ASGI (asgi.py) and WSGI (wsgi.py) with one middleware stack.

From ``examples/django_site`` (``pip install -e '.[examples]'`` first)::

    python manage.py migrate --run-syncdb  # creates the SQLite file (EXAMPLE_DB)
    uvicorn mysite.asgi:application              # ASGI: http://127.0.0.1:8000
    gunicorn -k gthread mysite.wsgi:application  # WSGI: the same app, the same stack

The views (mysite/views.py) show async code calling the ORM through
``bridge.sync_to_async`` and sync code calling async code through ``bridge.async_to_sync``.
"""
