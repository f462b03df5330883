"""Step load shape: e.g. 10 -> 25 -> 50 -> 100 users, each held; the step index tags every sample."""

from __future__ import annotations

from locust import LoadTestShape

from harness.runtime import fail, harness_of
from harness.steps import Step, parse_steps

__all__ = ["Step", "StepLoadShape", "parse_steps"]


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
            assert self.runner is not None
            o = harness_of(self.runner.environment).options
            self._steps = parse_steps(o.step_spec, o.step_hold)
        return self._steps

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        try:
            steps = self.steps()
        except ValueError as e:  # a bad --step-spec / --step-hold: one line, exit 2, no traceback
            if self.runner is not None:
                fail(self.runner.environment, f"error: {e}")
            return None
        elapsed = 0.0
        for i, step in enumerate(steps):
            elapsed += step.hold_s
            if t < elapsed:
                if i != self._index:
                    self._index = i
                    if self.runner is not None:
                        harness_of(self.runner.environment).set_step(i, step.users)
                parsed = self.runner.environment.parsed_options if self.runner else None
                rate = getattr(parsed, "spawn_rate", None) or step.users
                return step.users, float(rate)
        return None
