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
clear its address's count) and clears the pair's. An attempt whose password was never checked
(the database server lost as the account was looked up) counts for none of the three.

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

An operator is told in one WARNING line when an address's lock first refuses an attempt, when an
email's slowing first applies to one, and when a full store first refuses one: once per key a
window, once a window for the store, never once per refused request (a guesser would write the
log). A pair's lock is not told: one email from one address is a user mistyping. The line names
the email in full: it is the account an admin has to look at, and warn its owner about.
"""

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from itertools import islice
from typing import NamedTuple

from .shown import LOGGED_CHARS, quoted, shown

log = logging.getLogger(__name__)

MAX_KEYS = 10_000
# An address across all emails, and an email across all addresses, get this many times the
# attempts of one email from one address: a few typed wrong at several accounts, or from several
# devices, stay well below it.
SPREAD = 4
# The attempts each address gets at an email whose own count is used up.
SLOWED_ATTEMPTS = 1


class Attempt(NamedTuple):
    wait: int  # seconds until the next attempt is let through; 0: this one is, and counted
    at: float  # the throttle's clock as it was counted: what a give-back names it by


class LoginThrottle:
    def __init__(self, attempts, window_seconds, max_keys=MAX_KEYS, clock=time.monotonic):
        self.attempts = attempts
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()  # waitress serves requests on several threads
        # key -> [when its window started, attempts since the last success, whether its WARNING
        # line is written]; in order of start, as keys are only ever added at the end (a
        # monotonic clock): the expired ones are at the front. A key is ("pair", email, address),
        # ("address", address) or ("email", email).
        self._failures = OrderedDict()
        # How many of them have used up their count: when no other can be dropped, a new key is
        # refused at once, not after looking at all 10,000 (~4 ms under the lock, which each new
        # address an attacker sends would cost)
        self._spent = 0
        self._store_full_told_at = None  # the clock when the log was last told the store is full

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
            started = next(iter(self._failures.values()))[0]
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
        """Count an attempt at `email` from `address`: an Attempt whose wait is 0; or, once an
        attempt is more than its counts allow, the whole seconds until it may try again,
        counting nothing. Counted as the attempt begins, under the lock, and given back by
        `succeeded`: checked at the start and counted once the password had failed, every
        request that came in while others were being checked got through too (waitress serves
        several at once), a guess more per worker thread. A WARNING line is written outside the
        lock."""
        with self._lock:
            now = self.clock()
            wait, warning = self._attempt(email, address, now)
        if warning is not None:
            log.warning(*warning)
        return Attempt(wait, now)

    def _attempt(self, email, address, now):
        """attempt()'s wait, and the WARNING line it has to write, if any: once per key a
        window (its entry remembers), and once a window for a full store."""
        self._drop_expired(now)
        keys = ("address", address), ("pair", email, address), ("email", email)
        by_address, pair, by_email = (self._failures.get(key) for key in keys)
        if by_address is not None and self._used_up(keys[0], by_address):
            wait, warning = self._wait(by_address, now), None
            if not by_address[2]:
                by_address[2] = True
                warning = (
                    "login: %s is locked out of every account for %d s (%d attempts across "
                    "accounts within %d s); refused at %s", shown(address), wait, by_address[1],
                    self.window_seconds, shown_email(email),
                )
            return wait, warning
        slowed, warning = by_email is not None and self._used_up(keys[2], by_email), None
        if slowed and not by_email[2]:
            by_email[2] = True
            warning = (
                "login: %s is slowed to %d attempt an address for %d s (%d attempts at it from "
                "several addresses within %d s); this one from %s", shown_email(email),
                SLOWED_ATTEMPTS, self._wait(by_email, now), by_email[1], self.window_seconds,
                shown(address),
            )
        if pair is not None and pair[1] >= (SLOWED_ATTEMPTS if slowed else self.attempts):
            return self._wait(pair, now), warning
        if not self._make_room(sum(key not in self._failures for key in keys), keys):
            wait = self._wait(next(iter(self._failures.values())), now)
            told = self._store_full_told_at
            if warning is None and (told is None or now - told >= self.window_seconds):
                self._store_full_told_at = now
                warning = (
                    "login: all %d keys of the login throttle refuse or slow a guesser: /login "
                    "refuses every address and email not yet counted for up to %d s; refused %s "
                    "at %s", self.max_keys, wait, shown(address), shown_email(email),
                )
            return wait, warning
        for key in keys:
            entry = self._failures.setdefault(key, [now, 0, False])
            entry[1] += 1
            self._spent += entry[1] == self._limit(key)
        return 0, warning

    def succeeded(self, email, address, counted_at):
        """The password was right: the pair's count is cleared, and the attempt (the Attempt's
        `at`) given back to the address's and the email's."""
        with self._lock:
            key = "pair", email, address
            entry = self._failures.pop(key, None)
            if entry is not None:
                self._spent -= self._used_up(key, entry)
            self._give_back(counted_at, ("address", address), ("email", email))

    def not_checked(self, email, address, counted_at):
        """The attempt (the Attempt's `at`) ended before its password was checked (the database
        server lost as the account was looked up: a 503, or a rerun of the request, which counts
        it again): it is given back to all three counts, as a guess it was not."""
        with self._lock:
            self._give_back(
                counted_at, ("pair", email, address), ("address", address), ("email", email)
            )

    def _give_back(self, counted_at, *keys):
        """Only to a window the attempt was counted in: one that started after it (the request
        hung past its window, and others began a new one) holds other attempts."""
        for key in keys:
            entry = self._failures.get(key)
            if entry is not None and entry[0] <= counted_at and entry[1] > 0:
                self._spent -= self._used_up(key, entry)
                entry[1] -= 1
                self._spent += self._used_up(key, entry)


def shown_email(email):
    """An email in a log line, in full: the account an admin has to look at (the key keeps at
    most MAX_EMAIL + 1 characters of it)."""
    return shown(quoted(email, LOGGED_CHARS))


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
