"""``gslb serve --workers N``: N answering processes on one port.

Four rooms: ``supervisor`` (:class:`WorkerPool`, in the ``gslb serve``
process), ``worker`` (the answering process), ``messages`` (what they
say to each other over their pipe) and ``outbox`` (the supervisor's
non-blocking, coalescing writer to one worker).

Python answers on one core per process, so a nameserver that must use
several cores runs several processes. The process started by ``gslb serve``
becomes the **supervisor**: it keeps everything that must exist once (the
embedded prober or the Redis watcher, the drains, the admin server, reload
and metrics) and answers no query itself. Each **worker** is a child
process (``multiprocessing``, spawned) that binds every listen address with
``SO_REUSEPORT`` (the kernel spreads UDP datagrams and TCP connections over
the workers by a hash of the client's address and port) and answers from
its own :class:`gslb.authority.Authority` and answer cache.

One health view: the supervisor ships a :class:`ViewSnapshot` of its view
(health with drains applied) to every worker over a pipe whenever it
changes: at once on a health state change (the supervisor waits on the
view's change event), within ``SNAPSHOT_INTERVAL_S`` on a drain or on a
change of a smoothed RTT that ``latency`` pools read. Workers answer from a :class:`MirrorView` of
the last snapshot, so every worker answers alike: the only difference
between two workers is the ``latency`` anti-flap memory, kept per process
as it is per nameserver.

A worker that stops reading (SIGSTOP, a long pause) never blocks the
supervisor: every message to a worker goes through its ``Outbox``, which
writes without blocking and keeps only the latest snapshot waiting once the
pipe is full; the worker catches up to that snapshot when it reads again.

Workers ship their query counters to the supervisor every
``STATS_INTERVAL_S`` seconds, so ``/metrics`` counts every worker's
queries. A reload (SIGHUP or the admin API) is validated by the supervisor,
then each worker loads the same files. A worker that dies is started again
after ``RESTART_DELAY_S`` seconds; its share of queries goes to the other
workers meanwhile (the kernel rehashes over the remaining sockets).
"""
