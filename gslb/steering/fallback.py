"""All down: what to answer when no origin of a pool is healthy.

``pool.fallback`` is ``"all"`` (answer as if every member were up, the
default, as Route 53 does; drained members stay out unless every member is
drained), ``"none"`` (SERVFAIL, RFC 1035 section 4.1.1
RCODE 2) or the name of another pool to choose from instead. Also defines
:class:`Choice`, the outcome the DNS side encodes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from gslb.config.model import Origin, Pool
from gslb.health.view import AllUpExcept, HealthView
from gslb.steering.base import Basis, Client

log = logging.getLogger("gslb.steering")

#: Longest chain of pool-to-pool fallbacks followed before giving SERVFAIL.
#: The validator rejects cycles; this guards against one slipping through.
MAX_FALLBACK_DEPTH = 8

ChoiceKind = Literal["answer", "nodata", "servfail"]


@dataclass(frozen=True, slots=True)
class Choice:
    """The steering outcome for one (pool, family, client).

    * ``kind``: ``"answer"`` (``addresses`` non-empty), ``"nodata"`` (the
      pool has no member with an address of the family: NOERROR, empty
      answer, RFC 2308 section 2.2) or ``"servfail"``.
    * ``addresses``: every address of the family of each chosen origin, in
      answer order, duplicates removed (an RRset holds no duplicate RRs,
      RFC 2181 section 5).
    * ``scope``: ECS scope prefix-length to echo (RFC 7871 section 7.2.1).
    * ``pool``: the pool that answered, after any fallback.
    * ``fallback``: True when the pool's fallback produced this outcome.
    * ``reason``: human-readable chain of decisions (logs, status, explain).
    * ``basis``: what the outcome depended on, over every selection made
      for it (:class:`gslb.steering.base.Basis`): what the answer cache may
      reuse follows from it.
    * ``leaves``: in a tree of pools, the pool each address came from (in
      the order of ``addresses``); empty when every address came from
      ``pool`` itself.
    * ``rotate``: how many addresses form an RRset whose order moves from
      answer to answer (the queried pool's ``order`` is ``cyclic`` or
      ``random``, two or more addresses, no draw decided the order); 0
      when the order is fixed. ``shuffle``: that order is random rather
      than cyclic. The answer cache rotates or shuffles its stored answer
      by this report (:mod:`gslb.dns.cache`).
    """

    kind: ChoiceKind
    addresses: tuple[str, ...]
    scope: int
    pool: str
    fallback: bool
    reason: str
    basis: int = Basis.NONE
    leaves: tuple[str, ...] = ()
    rotate: int = 0
    shuffle: bool = False


def addresses_of(origins: Iterable[Origin], family: int) -> tuple[str, ...]:
    """The IPv4 (``family`` 4) or IPv6 (6) addresses of ``origins``, in
    order, without duplicates."""
    if family == 4:
        return tuple(dict.fromkeys(a for o in origins for a in o.ipv4))
    return tuple(dict.fromkeys(a for o in origins for a in o.ipv6))


ALL_UP = AllUpExcept()
"""Every origin up (generation 0) and no RTT known, for ``fallback: all``
(a ``latency`` pool then answers by its geo rules: the RTTs of dead origins
are of the past)."""


def everyone_up(health: HealthView) -> HealthView:
    """The view ``fallback: all`` selects with: every origin up except those
    an operator drained, when ``health`` knows of drains (it has an
    ``everyone_up()`` method, as :class:`gslb.health.overrides.DrainedView`
    does); else :data:`ALL_UP`."""
    method = getattr(health, "everyone_up", None)
    return method() if method is not None else ALL_UP


class FallbackLog:
    """Logs fallback once per transition, not per query: WARNING when a
    (pool, family) enters fallback, INFO when it has a healthy origin again.
    Transitions are noticed on queries. Holds no global state: one per
    :class:`gslb.steering.Steering`.

    ``logger``: where it logs (the ``gslb.steering`` logger by default);
    None keeps track of the transitions (``in_fallback``) but logs nothing,
    for a Steering that only previews answers (status pages).
    """

    __slots__ = ("_down", "_errors", "_logger")

    def __init__(self, logger: logging.Logger | None = log) -> None:
        self._down: set[tuple[str, int]] = set()
        self._errors: set[str] = set()
        self._logger = logger

    @property
    def in_fallback(self) -> frozenset[tuple[str, int]]:
        """(pool, family) pairs whose last query found no healthy origin."""
        return frozenset(self._down)

    def healthy(self, pool: str, family: int) -> None:
        """Record that ``pool`` answered ``family`` from a healthy origin."""
        if self._down and (pool, family) in self._down:
            self._down.discard((pool, family))
            if self._logger is not None:
                self._logger.info("pool %s: healthy origin again, leaving fallback (IPv%d)",
                                  pool, family)

    def down(self, pool: str, family: int, mode: str) -> None:
        """Record that ``pool`` had no healthy origin of ``family``."""
        if (pool, family) not in self._down:
            self._down.add((pool, family))
            if self._logger is not None:
                self._logger.warning("pool %s: no healthy origin, falling back to %s (IPv%d)",
                                     pool, mode, family)

    def error(self, message: str) -> None:
        """Log ``message`` at ERROR, once per distinct message."""
        if message not in self._errors:
            self._errors.add(message)
            if self._logger is not None:
                self._logger.error("%s", message)


ChooseFn = Callable[[str, int, Client, HealthView, random.Random, int], Choice]
"""``(pool_name, family, client, health, rng, depth) -> Choice``: choose from
another pool (``depth`` counts fallbacks followed so far)."""

AnswerFn = Callable[[HealthView], Choice]
"""The pool's own answer as the given view sees its members (no fallback):
``kind`` ``"answer"``, or anything else when the view has none up."""


def fall_back(
    pool: Pool,
    family: int,
    client: Client,
    health: HealthView,
    rng: random.Random,
    *,
    scope: int,
    basis: int,
    depth: int,
    choose: ChooseFn,
    answer: AnswerFn,
    flog: FallbackLog,
    why: str | None = None,
) -> Choice:
    """The outcome for ``pool`` (which found no healthy member, or fewer
    than its ``min_healthy``) according to ``pool.fallback``.

    ``scope`` and ``basis`` are the ECS scope and the basis of the empty
    selection; the result keeps the most specific of it and the fallback's
    scope, and what both depended on. ``answer`` gives the pool's own answer
    under another view (``fallback: all``); ``choose`` runs another pool;
    past ``MAX_FALLBACK_DEPTH`` pool fallbacks the answer is SERVFAIL.
    ``why`` says why the pool is down (default: it has no healthy member).
    """
    mode = pool.fallback
    target = mode if mode in ("all", "none") else f"pool {mode}"
    flog.down(pool.name, family, target)
    if client.trace is not None:
        client.trace.add("fallback", pool=pool.name, mode=mode,
                         why=why or f"no healthy origin in pool {pool.name}")
    why = f"{why or f'no healthy origin in pool {pool.name}'}; fallback to {target}"
    if mode == "none":
        return Choice("servfail", (), 0, pool.name, True, why, basis)
    if mode == "all":
        done = answer(everyone_up(health))
        if done.kind != "answer":
            # Every member drained as well as down: a drain never empties a
            # pool on its own, so answer as if all were up.
            if client.trace is not None:
                client.trace.add("fallback", pool=pool.name, mode="all",
                                 why="every member drained as well as down: drains ignored")
            done = answer(ALL_UP)
        if done.kind != "answer":
            return Choice("servfail", (), 0, pool.name, True, f"{why}: nothing to answer",
                          basis | done.basis)
        return replace(done, fallback=True, reason=f"{why}: {done.reason}",
                       scope=max(scope, done.scope), basis=basis | done.basis)
    if depth >= MAX_FALLBACK_DEPTH:
        flog.error(f"pool {pool.name}: fallback chain longer than {MAX_FALLBACK_DEPTH} pools"
                   " (a cycle?), answering SERVFAIL")
        return Choice("servfail", (), 0, pool.name, True, f"{why}: chain too long", basis)
    then = choose(mode, family, client, health, rng, depth + 1)
    return replace(then, fallback=True, reason=f"{why}: {then.reason}",
                   scope=max(scope, then.scope) if then.kind == "answer" else then.scope,
                   basis=basis | then.basis)
