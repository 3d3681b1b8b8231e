import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support import TARGETS

settings.register_profile("default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, max_examples=60, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(params=TARGETS, scope="session")
def target(request):
    return request.param
