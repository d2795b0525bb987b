"""Logging set-up: text or JSON lines, and the sampled query log.

* ``JsonFormatter``: one JSON object per line: ``ts`` (UTC, RFC 3339 with
  milliseconds), ``level``, ``logger``, ``msg``, then every structured
  field passed with ``extra=`` (``origin``, ``who``, ``reason``...), and
  ``exc`` with the traceback when there is one.
* ``setup(level, fmt)``: configure the root logger on stderr.
* ``QueryLog``: logs a random ``sample`` fraction of queries (logger
  ``gslb.query``, level INFO), one line each, with structured fields.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Callable
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
