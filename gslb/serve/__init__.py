"""``gslb serve``: the serving process, room by room.

``service`` wires the parts together and runs them (``Service``);
``reload`` swaps a new config in (``Reloader``); ``operations`` is what the
admin server acts through (drains, readiness); ``transitions`` keeps the
recent overall changes of origins; ``status`` builds the status document;
``metrics`` exports Prometheus families. The answer path itself is
:mod:`gslb.answering`; several answering processes are :mod:`gslb.workers`.
"""
