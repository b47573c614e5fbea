"""The wait before a conflict's rerun (fftelemetry.retries.backoff): random, so that requests
that just collided do not collide again at once, and within a ceiling that doubles with each
attempt up to BACKOFF_CAP_SECONDS (tests/functional/test_faults.py drives the reruns)."""

from fftelemetry.retries import BACKOFF_CAP_SECONDS, BACKOFF_SECONDS, backoff


def test_the_wait_is_random_within_a_ceiling_that_doubles_up_to_the_cap():
    for attempt, ceiling in [(0, BACKOFF_SECONDS), (1, 2 * BACKOFF_SECONDS),
                             (3, 8 * BACKOFF_SECONDS), (10, BACKOFF_CAP_SECONDS)]:
        waits = [backoff(attempt) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits), (attempt, max(waits))
        # spread over the whole range, not one fixed wait (nor none): 200 draws miss a quarter
        # of it once in 10^25
        assert min(waits) < ceiling / 4 and max(waits) > ceiling * 3 / 4, (attempt, waits)
