"""The hub's web console: server-rendered pages over HTTPS (Starlette, Jinja2 with
autoescape), a small script for live updates, no front-end build step.

Where things are:

- ``console_app.py``: the app factory (``create_console_app``) and the list of pages;
- ``console_context.py``: what pages work with (stores, accounts, audit log, templates);
- ``access_control.py``: login sessions, roles and CSRF checks on every route;
- ``security_headers.py``: Content-Security-Policy and the other response headers;
- ``pages/``: one module per page, each exporting ``routes``;
- ``templates/``: one Jinja2 template per page, all extending ``base.html``;
- ``static/``: the stylesheet and the scripts (no inline scripts: the CSP forbids them).

Adding a page: write ``pages/<name>_page.py`` whose endpoints are wrapped with
``access_control.allow(<roles>)`` (a route without it fails
``tests/hub/console/test_route_roles.py``), export ``routes: list[Route]``, add its
template under ``templates/`` and the module to ``PAGES`` in ``console_app.py``. A
state-changing request is a POST whose form carries ``csrf`` (the template gets it as
``session.csrf_token``); ``allow`` refuses one without it. Record what an operator did
with ``context.audit.record(event, **fields)``.

Adding a background task to the service (a renewal keeper, a status tracker): a class
with ``start()`` and ``stop()`` (stop: finish what is in flight, then return), added
to the tasks ``agent/hub/service/hub_service.py`` starts before the web server and
stops, in reverse order, after it.
"""
