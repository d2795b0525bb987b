"""JSON log lines and the sampled query log."""

from __future__ import annotations

import io
import json
import logging
import random

import pytest

from gslb.dns import wire
from gslb.logs import QueryLog, qtype_name, rcode_name, setup


def test_json_lines_carry_the_structured_fields():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup("INFO", "json", stream)
        logging.getLogger("gslb.test").warning("origin %s DRAINED", "a",
                                               extra={"origin": "a", "who": "me"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("gslb.test").exception("it broke")
    finally:
        root.handlers[:], root.level = saved
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "origin a DRAINED" and first["level"] == "WARNING"
    assert first["logger"] == "gslb.test" and first["origin"] == "a" and first["who"] == "me"
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24
    assert "RuntimeError: boom" in second["exc"]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="text or json"):
        setup("INFO", "xml")  # type: ignore[arg-type]


def test_names():
    assert (qtype_name(1), qtype_name(28), qtype_name(65280)) == ("A", "AAAA", "TYPE65280")
    assert (rcode_name(3), rcode_name(12)) == ("NXDOMAIN", "RCODE12")


def test_query_log_samples(caplog):
    query = wire.Query(id=1, opcode=0, rd=False, qname="www.Example.", qtype=1,
                       qname_lower="www.example.", qclass=1)
    answer = wire.Answer(answer=[("www.example.", 1, 30, wire.address_rdata("192.0.2.1"))])
    caplog.set_level(logging.INFO, "gslb.query")
    every = QueryLog(1.0)
    every(query, answer, "198.51.100.7")
    every(None, None, "198.51.100.8")
    assert [r.getMessage() for r in caplog.records] == [
        "query from 198.51.100.7: www.Example. A NOERROR 192.0.2.1",
        "query from 198.51.100.8: unparseable, FORMERR"]
    assert caplog.records[0].answers == ["192.0.2.1"]  # type: ignore[attr-defined]
    caplog.clear()
    some = QueryLog(0.1, random.Random(7))
    for _ in range(1000):
        some(query, answer, "198.51.100.7")
    assert 60 < len(caplog.records) < 140
    with pytest.raises(ValueError):
        QueryLog(1.5)
