"""Step specs for the step load shape (no Locust import: usable anywhere)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    users: int
    hold_s: float


def parse_steps(spec: str, default_hold_s: float) -> list[Step]:
    """``"10,25,50,100"`` or ``"10:30,25:60"`` (users[:seconds]); raises ValueError naming the item."""
    steps: list[Step] = []
    for item in spec.replace(" ", "").split(","):
        if not item:
            continue
        users_s, _, hold_s = item.partition(":")
        try:
            users = int(users_s)
            hold = float(hold_s) if hold_s else default_hold_s
        except ValueError:
            raise ValueError(f"--step-spec: {item!r} is not users[:seconds]") from None
        if users < 1 or hold <= 0:
            raise ValueError(f"--step-spec: {item!r} needs users >= 1 and seconds > 0")
        steps.append(Step(users, hold))
    if not steps:
        raise ValueError("--step-spec is empty")
    return steps
