"""The login throttle's bookkeeping, on a clock the test moves (the functional tests in
tests/functional/test_accounts.py drive it through /login)."""

from fftelemetry.throttle import MAX_KEYS, LoginThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_locked_after_the_attempts_until_the_window_from_the_first_failure_ends():
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("k") == 0
        throttle.failed("k")
        clock.now += 10
    assert throttle.retry_after("k") == 30  # 60 from the first failure, 30 ago
    clock.now += 29.5
    assert throttle.retry_after("k") == 1  # rounded up: never "try again in 0 seconds"
    clock.now += 0.5
    assert throttle.retry_after("k") == 0
    assert len(throttle) == 0  # an expired window is forgotten


def test_a_success_clears_its_key_only():
    throttle = LoginThrottle(1, 60, clock=Clock())
    throttle.failed("a")
    throttle.failed("b")
    throttle.succeeded("a")
    assert (throttle.retry_after("a"), throttle.retry_after("b")) == (0, 60)


def test_at_most_max_keys_are_kept_the_oldest_dropped():
    clock = Clock()
    throttle = LoginThrottle(1, 60, clock=clock)
    for n in range(MAX_KEYS + 500):
        throttle.failed(("email", n))
        clock.now += 0.001
    assert len(throttle) == MAX_KEYS == 10_000
    assert throttle.retry_after(("email", 499)) == 0  # dropped
    assert throttle.retry_after(("email", 500)) > 0
