"""Hypothesis profiles of the fuzz and attack suite (issue 11 item 8).

CI runs ``ci`` (few examples: the whole folder in well under 30 s); ``DRGDIP_FUZZ=long pytest tests/fuzz -s``
runs ``long`` for benchmark-style runs (``DRGDIP_FUZZ_EXAMPLES`` sets its size, 500 by default). Each test counts
what it tried in ``COUNTS`` (examples, rows), printed at the end of the run. Applied per test (``@FUZZ``), so
the other hypothesis tests keep their own settings.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

COUNTS: Counter = Counter()
PROFILE = os.environ.get("DRGDIP_FUZZ", "ci")
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "drgdip-fuzz-ci", max_examples=6, deadline=None, derandomize=True, suppress_health_check=_SLOW
)
settings.register_profile(
    "drgdip-fuzz-long",
    max_examples=int(os.environ.get("DRGDIP_FUZZ_EXAMPLES", "500")),
    deadline=None,
    suppress_health_check=_SLOW,
)
#: The settings every fuzz test runs under.
FUZZ = settings(settings.get_profile(f"drgdip-fuzz-{PROFILE}"))
