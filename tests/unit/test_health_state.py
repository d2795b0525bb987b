"""Rise/fall hysteresis: table tests over result sequences."""

from __future__ import annotations

import pytest

from gslb.health.state import Hysteresis


@pytest.mark.parametrize(
    ("rise", "fall", "results", "states"),
    [
        # up → down after exactly `fall` consecutive failures
        (2, 3, "FFF", "UUD"),
        (2, 1, "F", "D"),
        # a success between failures restarts the count
        (2, 3, "FFSFFF", "UUUUUD"),
        # down → up after exactly `rise` consecutive successes
        (2, 2, "FFSS", "UDDU"),
        (3, 1, "FSSFSSS", "DDDDDDU"),
        # a failure between successes keeps a down origin down
        (2, 1, "FSFSFSS", "DDDDDDU"),
        # long runs keep the state
        (1, 1, "SSSS", "UUUU"),
        (1, 1, "FSFS", "DUDU"),
        (2, 2, "FFFFSSSS", "UDDDDUUU"),
    ],
)
def test_sequences(rise: int, fall: int, results: str, states: str) -> None:
    h = Hysteresis(rise, fall, up=True)
    seen = ""
    for r in results:
        was = h.up
        changed = h.feed(r == "S")
        assert changed == (h.up != was)
        seen += "U" if h.up else "D"
    assert seen == states


@pytest.mark.parametrize(
    ("rise", "fall", "results", "states"),
    [
        # unknown (?) leaves down at the first failure, whatever fall says
        (2, 3, "F", "D"),
        (2, 3, "SF", "?D"),
        # and up after rise consecutive successes
        (2, 3, "SS", "?U"),
        (1, 3, "S", "U"),
        (3, 3, "SSFSSS", "??DDDU"),
    ],
)
def test_unknown_until_a_first_failure_or_rise_successes(rise: int, fall: int, results: str,
                                                          states: str) -> None:
    h = Hysteresis(rise, fall)
    assert h.up is None
    seen = ""
    for r in results:
        was = h.up
        changed = h.feed(r == "S")
        assert changed == (h.up != was)
        seen += "?" if h.up is None else "U" if h.up else "D"
    assert seen == states


def test_initial_state_is_unknown_and_configurable() -> None:
    assert Hysteresis(2, 3).up is None
    h = Hysteresis(2, 3, up=False)
    assert (h.up, h.consecutive, h.last_ok) == (False, 0, None)
    assert h.feed(True) is False and h.feed(True) is True and h.up


def test_consecutive_counts_the_current_run() -> None:
    h = Hysteresis(2, 2)
    for ok, expected in [(False, 1), (False, 2), (False, 3), (True, 1), (True, 2), (False, 1)]:
        h.feed(ok)
        assert (h.consecutive, h.last_ok) == (expected, ok)


def test_thresholds_may_change_between_feeds() -> None:
    h = Hysteresis(2, 5, up=True)
    h.feed(False)
    h.feed(False)
    h.fall = 3
    assert h.feed(False) is True and not h.up


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0), (-1, 2)])
def test_thresholds_below_one_are_rejected(rise: int, fall: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis(rise, fall)
