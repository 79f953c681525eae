"""Shared pytest configuration: fixture modules of each area are registered as plugins here.

Hypothesis profiles: "ci" (the default) runs a small, derandomized number of examples so the suite is quick
and reproducible; "fuzz" (``HYPOTHESIS_PROFILE=fuzz``, what ``make fuzz`` sets) runs thousands of random ones.
Both give every example a few seconds, so a hang or a slow blow-up fails instead of stalling the run.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

pytest_plugins: list[str] = ["fixtures_lerobot", "fixtures_servers", "fixtures_reader"]

_SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=100, deadline=timedelta(seconds=5), derandomize=True, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "fuzz", max_examples=4000, deadline=timedelta(seconds=5), suppress_health_check=_SUPPRESSED
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
