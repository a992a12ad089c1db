"""A 529 storm of several minutes from the model API: the run waits with a bounded backoff and
then finishes; retries do not multiply (one try of Temporal is one request, the SDK adds none)."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.utils.fake_anthropic import FakeMessagesApi
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_agent import Harness, harness  # noqa: F401 - the fixture

STORM_S = 180.0
FIRST_S, LONGEST_S = 1.0, 20.0


@pytest.mark.minutes
@pytest.mark.timeout(STORM_S + 240)
@pytest.mark.parametrize(
    "harness", [{"model_retry_initial_s": FIRST_S, "model_retry_max_s": LONGEST_S}],
    indirect=True,
)  # fmt: skip
async def test_a_storm_of_minutes_is_waited_out_at_a_bounded_pace(
    harness: Harness,  # noqa: F811 - the fixture imported above
) -> None:
    fake: FakeMessagesApi = harness.fake
    fake.headers = {}  # no retry-after: Temporal's own backoff paces the tries
    fake.storm_until = time.monotonic() + STORM_S
    run_id = await harness.submit()
    run = await wait_for_end(harness.api, run_id, timeout_s=STORM_S + 180)
    assert run["status"] == "completed", run
    assert run["usage"]["turns"] == 7  # nothing paid for the storm

    times = [r["at"] for r in fake.requests]
    stormed = [t for t in times if t < fake.storm_until]
    after = [t for t in times if t >= fake.storm_until]
    gaps = [b - a for a, b in itertools.pairwise(stormed)]
    print(f"{len(stormed)} tries in the storm, gaps {min(gaps):.1f}-{max(gaps):.1f}s, "
          f"back {after[0] - fake.storm_until:.1f}s after it, {len(after)} after")  # fmt: skip
    # Backoff 1, 2, 4, 8, 16, then 20 s between tries: about 13 tries in 180 s. Retries that
    # multiplied (the SDK's inside Temporal's) would show as requests a moment apart.
    assert 8 <= len(stormed) <= 16, gaps
    assert min(gaps) >= FIRST_S * 0.9, gaps
    assert max(gaps) <= LONGEST_S + 3, gaps
    assert after[0] - fake.storm_until <= LONGEST_S + 3  # back to work within one backoff
    assert len(after) == 7  # then each turn exactly once
