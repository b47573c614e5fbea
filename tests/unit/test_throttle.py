"""The login throttle's bookkeeping, on a clock the test moves (the functional tests in
tests/functional/test_accounts.py drive it through /login)."""

from fftelemetry.throttle import MAX_KEYS, LoginThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_locked_after_the_attempts_until_the_window_from_the_first_attempt_ends():
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    for _ in range(3):
        assert throttle.attempt("k") == 0
        clock.now += 10
    assert throttle.attempt("k") == 30  # 60 from the first attempt, 30 ago
    clock.now += 29.5
    assert throttle.attempt("k") == 1  # rounded up: never "try again in 0 seconds"
    clock.now += 0.5
    assert throttle.attempt("k") == 0  # the window is over: a new one begins with this attempt
    assert list(throttle._failures.values()) == [[clock.now, 1]]


def test_an_attempt_refused_is_not_counted():
    clock = Clock()
    throttle = LoginThrottle(1, 60, clock=clock)
    assert throttle.attempt("k") == 0
    for _ in range(5):
        assert throttle.attempt("k") == 60
    clock.now += 60
    assert throttle.attempt("k") == 0


def test_a_success_clears_its_key_only():
    throttle = LoginThrottle(1, 60, clock=Clock())
    throttle.attempt("a")
    throttle.attempt("b")
    throttle.succeeded("a")
    assert (throttle.attempt("a"), throttle.attempt("b")) == (0, 60)


def test_at_most_max_keys_are_kept_the_oldest_dropped():
    clock = Clock()
    throttle = LoginThrottle(1, 60, clock=clock)
    for n in range(MAX_KEYS + 500):
        throttle.attempt(("email", n))
        clock.now += 0.001
    assert len(throttle) == MAX_KEYS == 10_000
    assert throttle.attempt(("email", 500)) > 0
    assert throttle.attempt(("email", 499)) == 0  # dropped: a first attempt again
