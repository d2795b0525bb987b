"""Zone text: static RDATA checked and made canonical at config load time."""

from __future__ import annotations

import pytest

from gslb.dns import zonetext


@pytest.mark.parametrize(
    ("rtype", "text", "expected"),
    [
        ("MX", "10 mail", "10 mail.example.test."),
        ("NS", "ns1.other.test.", "ns1.other.test."),
        ("AAAA", "2001:DB8:0::1", "2001:db8::1"),
        ("SRV", "1 2 3 sip", "1 2 3 sip.example.test."),
    ],
)
def test_normalize_rdata(rtype, text, expected):
    assert zonetext.normalize_rdata(rtype, text, "example.test.") == expected


@pytest.mark.parametrize(
    ("rtype", "text", "message"),
    [
        ("A", "1.2.3", "bad A address"),
        ("A", "::1", "IPv6"),
        ("MX", "mail", "expected 2 field"),
        ("SRV", "1 2 x y", "field 3 must be a number"),
        ("HINFO", "x y", "unsupported record type"),
    ],
)
def test_normalize_rdata_errors(rtype, text, message):
    with pytest.raises(ValueError, match=message):
        zonetext.normalize_rdata(rtype, text, "example.test.")
