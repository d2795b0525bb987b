"""Logging set-up: text or JSON lines, and the sampled query log.

* ``JsonFormatter``: one JSON object per line: ``ts`` (UTC, RFC 3339 with
  milliseconds), ``level``, ``logger``, ``msg``, then every structured
  field passed with ``extra=`` (``origin``, ``who``, ``reason``...), and
  ``exc`` with the traceback when there is one.
* ``setup(level, fmt)``: configure the root logger on stderr.
* ``QueryLog``: logs a random ``sample`` fraction of queries (logger
  ``gslb.query``, level INFO), one line each, with structured fields.
* ``RateLimitedLog``: at most one line per key (a client, an error) per
  period, for events a client can cause at will (zone transfer requests,
  internal errors); ``error_key`` is the key of an exception.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, Literal, TextIO

from gslb.dns.wire import QTYPE, Answer, Query

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else came through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED", 16: "BADVERS", 23: "BADCOOKIE"}
"""RCODE mnemonics (RFC 1035 section 4.1.1, RFC 6891 section 9, RFC 7873
section 8)."""


def rcode_name(rcode: int) -> str:
    """The mnemonic of ``rcode``, or ``RCODE<n>``."""
    return RCODES.get(rcode) or f"RCODE{rcode}"


def qtype_name(qtype: int) -> str:
    """The mnemonic of ``qtype``, or ``TYPE<n>`` (RFC 3597 section 5)."""
    name = str(QTYPE.get(qtype, ""))
    return name if name and not name.isdigit() else f"TYPE{qtype}"


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def setup(level: str | int = "INFO", fmt: LogFormat = "text",
          stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` and above to ``stream`` (default
    stderr) as text lines or JSON lines (``fmt``); replaces any handler the
    root logger had. Raises ValueError for an unknown ``fmt``."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class QueryLog:
    """Logs about ``sample`` (0 to 1) of the queries answered: one INFO line
    each on logger ``gslb.query``, with fields ``client``, ``qname``,
    ``qtype``, ``rcode``, ``answers`` (addresses and other RDATA texts of
    the answer section) and ``ecs`` (``address/source`` or None). An
    ``authority.Observer``. Raises ValueError for a sample outside [0, 1].
    """

    def __init__(self, sample: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"query log sample must be from 0 to 1, not {sample}")
        self.sample = sample
        self.log = logging.getLogger("gslb.query")
        self._random = (rng or random.Random()).random

    def __call__(self, query: Query | None, answer: Answer | None, who: str) -> None:
        """Maybe log one answered query (``query``/``answer`` None: a
        message we could not parse, answered FORMERR)."""
        if self._random() >= self.sample:
            return
        if query is None or answer is None:
            self.log.info("query from %s: unparseable, FORMERR", who, extra={
                "client": who, "rcode": "FORMERR"})
            return
        rcode = rcode_name(answer.rcode)
        qtype = qtype_name(query.qtype)
        answers = [str(rr[3]) for rr in answer.answer]
        ecs = f"{query.ecs.address}/{query.ecs.source}" if query.ecs is not None else None
        self.log.info("query from %s%s: %s %s %s %s", who, f" (ecs {ecs})" if ecs else "",
                      query.qname, qtype, rcode, " ".join(answers) or "-", extra={
                          "client": who, "ecs": ecs, "qname": query.qname, "qtype": qtype,
                          "rcode": rcode, "answers": answers})


def with_query_log(count: Callable[[Query | None, Answer | None, str], None],
                   sample: float) -> Callable[[Query | None, Answer | None, str], None]:
    """The ``authority.Observer`` of a nameserver process: ``count`` (the
    metrics), and a ``QueryLog`` of ``sample`` of the queries when
    ``sample`` is above 0. Raises ValueError for a sample above 1."""
    if sample <= 0:
        return count
    query_log = QueryLog(sample)

    def observe(query: Query | None, answer: Answer | None, who: str) -> None:
        count(query, answer, who)
        query_log(query, answer, who)
    return observe


class RateLimitedLog:
    """Logs on ``logger`` at most one line per key per ``period_s`` seconds
    (default 60), and at most ``max_lines`` lines per period in all (so a
    flood from many spoofed sources cannot flood the log either); the
    events left out are counted, and the next line of the key says how
    many there were. Memory is bounded: at most ``max_keys`` keys are
    remembered (the longest unlogged are forgotten first). ``clock``:
    seconds, monotonic (tests pass their own). Not thread-safe: one per
    event loop. Raises ``ValueError`` for a period, ``max_keys`` or
    ``max_lines`` below 1 (period: not above 0)."""

    __slots__ = ("_clock", "_lines", "_seen", "_window", "logger", "max_keys", "max_lines",
                 "period_s", "suppressed")

    def __init__(self, logger: logging.Logger, period_s: float = 60.0, *,
                 max_keys: int = 1024, max_lines: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if period_s <= 0 or max_keys < 1 or max_lines < 1:
            raise ValueError("period_s must be above 0, max_keys and max_lines at least 1")
        self.logger = logger
        self.period_s = period_s
        self.max_keys = max_keys
        self.max_lines = max_lines
        self._clock = clock
        #: key -> [when last logged (clock seconds), events left out since];
        #: in the order they were last logged (oldest first)
        self._seen: dict[Hashable, list[float]] = {}
        self._window = -period_s
        self._lines = 0
        self.suppressed = 0
        """Events left out since this log was made, in all (for tests)."""

    def log(self, key: Hashable, level: int, msg: str, *args: object,
            exc_info: BaseException | None = None,
            extra: dict[str, object] | None = None) -> bool:
        """Log ``msg % args`` at ``level`` (with ``exc_info``'s traceback and
        ``extra`` fields) unless ``key`` was logged within ``period_s`` or
        this period's ``max_lines`` are spent; True when it was logged. A
        line after some were left out for its key ends with ``(N more
        since)`` and has the field ``suppressed``."""
        now = self._clock()
        seen = self._seen
        entry = seen.get(key)
        if entry is not None and now - entry[0] < self.period_s:
            entry[1] += 1
            self.suppressed += 1
            return False
        if now - self._window >= self.period_s:
            self._window, self._lines = now, 0
        if self._lines >= self.max_lines:
            if entry is not None:
                entry[1] += 1
            self.suppressed += 1
            return False
        self._lines += 1
        skipped = int(entry[1]) if entry is not None else 0
        seen.pop(key, None)
        seen[key] = [now, 0]  # last in the order: the most recently logged
        while len(seen) > self.max_keys:
            del seen[next(iter(seen))]
        fields = dict(extra or {})
        if skipped:
            msg += f" ({skipped} more since)"
            fields["suppressed"] = skipped
        self.logger.log(level, msg, *args, exc_info=exc_info, extra=fields or None)
        return True


def error_key(exc: BaseException) -> tuple[str, str, int]:
    """What makes an error distinct for :class:`RateLimitedLog`: the
    exception's type and the file and line of the innermost frame of its
    traceback (where it was raised), ``("", 0)`` for those without one."""
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__qualname__, "", 0
    while tb.tb_next is not None:
        tb = tb.tb_next
    return type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno
