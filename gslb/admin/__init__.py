"""The operations surface over HTTP: the admin application (``app``), its
endpoints (``handlers``) and the status page (``static/``). See
docs/admin.md. What it reports on and acts upon reaches it as narrow
objects (:class:`gslb.admin.app.AdminParts`); the status document and the
metrics are built in :mod:`gslb.serve`."""
