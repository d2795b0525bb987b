"""Small stand-ins for the parts a unit test is not about."""

from __future__ import annotations


class Health:
    """A HealthView from a dict: origin name → up; unknown origins are up."""

    generation = 0

    def __init__(self, **states: bool) -> None:
        self.states = states

    def is_up(self, origin: str) -> bool:
        return self.states.get(origin, True)

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None

    def load(self, origin: str) -> float | None:
        return None

    ramping = False

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return 1.0
