"""Step load shape: e.g. 10 -> 25 -> 50 -> 100 users, each held; the step index tags every sample."""

from __future__ import annotations

from locust import LoadTestShape

from dataclasses import dataclass

from harness import runtime


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


class StepLoadShape(LoadTestShape):
    """Reads ``--step-spec`` / ``--step-hold`` at each run; stops after the last step."""

    def __init__(self) -> None:
        super().__init__()
        self._steps: list[Step] | None = None
        self._index: int | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self._steps = None
        self._index = None

    def steps(self) -> list[Step]:
        if self._steps is None:
            o = runtime.current().options
            self._steps = parse_steps(o.step_spec, o.step_hold)
        return self._steps

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        elapsed = 0.0
        for i, step in enumerate(self.steps()):
            elapsed += step.hold_s
            if t < elapsed:
                if i != self._index:
                    self._index = i
                    runtime.current().set_step(i, step.users)
                parsed = self.runner.environment.parsed_options if self.runner else None
                rate = getattr(parsed, "spawn_rate", None) or step.users
                return step.users, float(rate)
        return None
