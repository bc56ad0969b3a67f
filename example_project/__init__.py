"""Small host web apps with the gateway mounted at /ai (see README).

- the Django site (``python -m example_project``): users, a login page, keys, usage and a streaming
  prompt, with the gateway served by the ``bifrost_django`` app;
- ``starlette_app``: the gateway mounted in a Starlette app;
- ``flask_app``: the gateway in a Flask app, for Flask-Login users.
"""
