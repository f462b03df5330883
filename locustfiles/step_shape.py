"""The AI-context users under a step shape (``--step-spec 10,25,50,100 --step-hold 30``).

    locust -f locustfiles/step_shape.py --headless -t 130s --csv runs/steps
"""

from harness.shape import StepLoadShape
from locustfiles.ai_context import *  # noqa: F403  (the user classes)


class StepShape(StepLoadShape):
    pass
