"""Login throttling, as Firefly III (Laravel) does it: after `fftelemetry.login_attempts` failed
logins for one email from one client address, the login form answers 429 until
`fftelemetry.login_window_seconds` after the first of them, without checking the password.

Keyed by email *and* address: someone elsewhere failing on purpose must not lock the owner out.
Two wider counts, of SPREAD times as many attempts, close what that key leaves open:
- an address's, across all emails, which locks it out as the pair's does: without it, one
  address cycling through made-up emails got 5 guesses at each, and pushed the key of the
  account it was really guessing out of the bounded store, for 5 fresh guesses, without end;
- an email's, across all addresses, which locks nobody out (the owner's address is one of
  them): once it is used up, each address gets one attempt at that email a window, not 5, so
  guesses spread over many addresses are slowed fivefold, and the owner still gets in.
A success counts for neither: it gives back its own attempt (an attacker's own account cannot
clear its address's count) and clears the pair's.

The counts live in this process's memory, not in the database: a guess must not become a write
(load, and conflicts between ZEO clients). So with N app processes an address gets up to N times
the attempts, and a restart forgets them. At most `max_keys` are kept, so an attacker cycling
emails or addresses cannot grow them without bound: when a new key needs room the expired go
first, then the oldest that has not used up its count. One that has (it refuses, or slows, a
guesser right now) is never dropped: dropping it would hand its guesser a fresh count. If every
other key has, the attempt is refused (429) until the oldest window ends rather than let through
uncounted: filling the store so takes some 1,700 addresses (IPv6 /64s: a /48 holds 65,536)
failing 20 times each within one window, 33,000 argon2 checks, and letting them through would
give those addresses guesses without limit; refusing costs everyone not yet counted logging in
for at most a window.
"""

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from itertools import islice

MAX_KEYS = 10_000
# An address across all emails, and an email across all addresses, get this many times the
# attempts of one email from one address: a few typed wrong at several accounts, or from several
# devices, stay well below it.
SPREAD = 4
# The attempts each address gets at an email whose own count is used up.
SLOWED_ATTEMPTS = 1


class LoginThrottle:
    def __init__(self, attempts, window_seconds, max_keys=MAX_KEYS, clock=time.monotonic):
        self.attempts = attempts
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()  # waitress serves requests on several threads
        # key -> [when its window started, attempts since the last success]; in order of start,
        # as keys are only ever added at the end (a monotonic clock): the expired ones are at the
        # front. A key is ("pair", email, address), ("address", address) or ("email", email).
        self._failures = OrderedDict()
        # How many of them have used up their count: when no other can be dropped, a new key is
        # refused at once, not after looking at all 10,000 (~4 ms under the lock, which each new
        # address an attacker sends would cost)
        self._spent = 0

    def __len__(self):
        return len(self._failures)

    def _limit(self, key):
        return self.attempts if key[0] == "pair" else self.attempts * SPREAD

    def _used_up(self, key, entry):
        return entry[1] >= self._limit(key)

    def _wait(self, entry, now):
        return max(1, math.ceil(entry[0] + self.window_seconds - now))

    def _drop_expired(self, now):
        while self._failures:
            started, _ = next(iter(self._failures.values()))
            if now - started < self.window_seconds:
                return
            key, entry = self._failures.popitem(last=False)
            self._spent -= self._used_up(key, entry)

    def _make_room(self, needed, keep):
        """Drop the oldest keys that have not used up their count, none of `keep`, until `needed`
        new ones fit; False if they cannot."""
        excess = len(self._failures) + needed - self.max_keys
        if excess <= 0:
            return True
        kept = sum(key in self._failures and not self._used_up(key, self._failures[key])
                   for key in keep)
        if len(self._failures) - self._spent - kept < excess:
            return False
        droppable = list(islice(
            (key for key, entry in self._failures.items()
             if key not in keep and not self._used_up(key, entry)),
            excess,
        ))
        for key in droppable:
            del self._failures[key]
        return True

    def attempt(self, email, address):
        """Count an attempt at `email` from `address` and return 0; or, once an attempt is more
        than its counts allow, the whole seconds until it may try again, counting nothing.
        Counted as the attempt begins, under the lock, and given back by `succeeded`: checked at
        the start and counted once the password had failed, every request that came in while
        others were being checked got through too (waitress serves several at once), a guess
        more per worker thread."""
        with self._lock:
            now = self.clock()
            self._drop_expired(now)
            keys = ("address", address), ("pair", email, address), ("email", email)
            by_address, pair, by_email = (self._failures.get(key) for key in keys)
            if by_address is not None and self._used_up(keys[0], by_address):
                return self._wait(by_address, now)
            slowed = by_email is not None and self._used_up(keys[2], by_email)
            if pair is not None and pair[1] >= (SLOWED_ATTEMPTS if slowed else self.attempts):
                return self._wait(pair, now)
            if not self._make_room(sum(key not in self._failures for key in keys), keys):
                return self._wait(next(iter(self._failures.values())), now)
            for key in keys:
                entry = self._failures.setdefault(key, [now, 0])
                entry[1] += 1
                self._spent += entry[1] == self._limit(key)
            return 0

    def succeeded(self, email, address):
        """The password was right: the pair's count is cleared, and the attempt given back to
        the address's and the email's."""
        with self._lock:
            key = "pair", email, address
            entry = self._failures.pop(key, None)
            if entry is not None:
                self._spent -= self._used_up(key, entry)
            for key in ("address", address), ("email", email):
                entry = self._failures.get(key)
                if entry is not None and entry[1] > 0:
                    self._spent -= self._used_up(key, entry)
                    entry[1] -= 1
                    self._spent += self._used_up(key, entry)


def client_network(address):
    """What failed logins from `address` are counted by: an IPv6 address's /64, the least a
    provider gives one subscriber (or one server), so that cycling through its 2**64 addresses is
    one address (one given a /56 or a /48 still has 256 or 65,536 of them); an IPv4 address as
    it is (one mapped into IPv6 too). Anything else, as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # no REMOTE_ADDR (None), or a unix socket's
        return address
    if ip.version == 4:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))  # a scope id (%eth0) dropped


def includeme(config):
    # Per app, not per module: two apps in one process (the tests) must not share it.
    settings = config.registry.app_settings
    config.registry.login_throttle = LoginThrottle(
        settings.login_attempts, settings.login_window_seconds
    )
