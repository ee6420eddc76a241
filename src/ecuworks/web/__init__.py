"""The workstation's web UI: FastAPI, Jinja2 templates, htmx and server-sent events.

Pages are plain HTML forms and links that work without JavaScript; htmx (when its file is
installed, see :mod:`ecuworks.web.assets`) only makes them update in place, and the
programming screen streams its progress as server-sent events.
"""
