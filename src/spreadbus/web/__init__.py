"""``spreadbus web``: the HTTP API under ``/api`` (and, later, the dashboard at ``/``).

Read-only over the bus except for ``config:pairs`` and ``config:alerts``, whose writes are
announced on ``channel:config``. :func:`spreadbus.web.api.create_app` builds the app;
:func:`spreadbus.web.service.main` serves it with uvicorn inside the service lifecycle.
"""
