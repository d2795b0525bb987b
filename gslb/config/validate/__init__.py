"""Turn loaded YAML documents into the frozen model, collecting every problem.

``Validator`` is the one entry point: it walks the documents produced by
``gslb.config.loader`` and builds ``gslb.config.model.Config``. Each problem
becomes one reason ``FILE:LINE: KEY.PATH: message`` (LINE 1-based, of the
YAML node at fault; KEY.PATH a breadcrumb such as ``pools.web.origins[2]``).
Nothing stops at the first problem: every reason is collected, then one
``ConfigError`` lists them all (octoDNS style). The YAML format is described
in ``docs/config.md``.

``validator`` holds ``Validator``; one module per concern besides:
``reader`` (``At``, the reasons and the typed
readers, domain-name checks, shared by all), ``documents`` (the top level:
files merged into sections), ``origins`` (with ``checks`` and ``places``),
``pools``, ``zones``, ``vantages`` and ``health``.
"""
