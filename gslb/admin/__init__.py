"""The operations surface: the admin HTTP server (``app``), its endpoints
(``handlers``), Prometheus metrics (``metrics``) and the status page
(``static/``). See docs/admin.md."""
