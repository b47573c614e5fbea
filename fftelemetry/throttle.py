"""Login throttling, as Firefly III (Laravel) does it: after `fftelemetry.login_attempts` failed
logins for one email from one client address, the login form answers 429 until
`fftelemetry.login_window_seconds` after the first of them, without checking the password.

Keyed by email *and* address: someone elsewhere failing on purpose must not lock the owner out.
The counts live in this process's memory, not in the database: a guess must not become a write
(load, and conflicts between ZEO clients). So with N app processes an address gets up to N times
the attempts, and a restart forgets them. At most `max_keys` are kept, the oldest dropped first,
so an attacker cycling emails or addresses cannot grow them without bound.
"""

import math
import threading
import time
from collections import OrderedDict

MAX_KEYS = 10_000


class LoginThrottle:
    def __init__(self, attempts, window_seconds, max_keys=MAX_KEYS, clock=time.monotonic):
        self.attempts = attempts
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()  # waitress serves requests on several threads
        # key -> [when its window started, attempts since the last success]; in order of start,
        # as keys are only ever added at the end (a monotonic clock): the expired ones are at the
        # front
        self._failures = OrderedDict()

    def __len__(self):
        return len(self._failures)

    def _drop_expired(self, now):
        while self._failures:
            started, _ = next(iter(self._failures.values()))
            if now - started < self.window_seconds:
                return
            self._failures.popitem(last=False)

    def attempt(self, key):
        """Count an attempt for `key` and return 0; or, once its attempts are used up, the whole
        seconds until it may try again, counting nothing. Counted as the attempt begins, under
        the lock, and cleared by `succeeded`: checked at the start and counted once the password
        had failed, every request that came in while others were being checked got through too
        (waitress serves several at once), a guess more per worker thread."""
        with self._lock:
            now = self.clock()
            self._drop_expired(now)
            entry = self._failures.get(key)
            if entry is None:
                entry = self._failures[key] = [now, 0]
                if len(self._failures) > self.max_keys:
                    self._failures.popitem(last=False)
            started, attempts = entry
            if attempts >= self.attempts:
                return max(1, math.ceil(started + self.window_seconds - now))
            entry[1] += 1
            return 0

    def succeeded(self, key):
        with self._lock:
            self._failures.pop(key, None)


def includeme(config):
    # Per app, not per module: two apps in one process (the tests) must not share it.
    settings = config.registry.app_settings
    config.registry.login_throttle = LoginThrottle(
        settings.login_attempts, settings.login_window_seconds
    )
