"""The login throttle's bookkeeping, on a clock the test moves (the functional tests in
tests/functional/test_accounts.py drive it through /login)."""

import random

from fftelemetry.throttle import MAX_KEYS, SPREAD, LoginThrottle, client_network


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fail(throttle, count, email="owner", address="attacker"):
    """`count` attempts, each let through; the time of the last, for a give-back."""
    for _ in range(count):
        counted = throttle.attempt(email, address)
        assert counted.wait == 0
    return counted.at


def test_locked_after_the_attempts_until_the_window_from_the_first_attempt_ends():
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    for _ in range(3):
        assert throttle.attempt("e", "a").wait == 0
        clock.now += 10
    assert throttle.attempt("e", "a").wait == 30  # 60 from the first attempt, 30 ago
    clock.now += 29.5
    assert throttle.attempt("e", "a").wait == 1  # rounded up: never "try again in 0 seconds"
    clock.now += 0.5
    assert throttle.attempt("e", "a").wait == 0  # the window is over: a new one begins with it
    assert list(throttle._failures.values()) == [[clock.now, 1, False]] * 3  # pair, address, email


def test_a_window_that_ends_forgets_its_own_keys_only():
    clock = Clock()
    throttle = LoginThrottle(1, 60, clock=clock)
    fail(throttle, 1, "a", "one")
    clock.now += 30
    fail(throttle, 1, "b", "two")  # its pair locked for the 60 s of its own window
    clock.now += 31  # the first window is over, the second has 29 s to go
    assert throttle.attempt("b", "two").wait == 29
    assert len(throttle) == 3  # the second attempt's pair, address and email


def test_an_attempt_refused_is_not_counted():
    clock = Clock()
    throttle = LoginThrottle(1, 60, clock=clock)
    assert throttle.attempt("e", "a").wait == 0
    for _ in range(5):
        assert throttle.attempt("e", "a").wait == 60
    clock.now += 60
    assert throttle.attempt("e", "a").wait == 0


def test_a_success_clears_its_pair_only():
    throttle = LoginThrottle(1, 60, clock=Clock())
    counted = throttle.attempt("a", "here")
    throttle.attempt("b", "here")
    throttle.succeeded("a", "here", counted.at)
    assert (throttle.attempt("a", "here").wait, throttle.attempt("b", "here").wait) == (0, 60)


def test_an_address_cycling_emails_is_locked_out_of_every_email():
    clock = Clock()
    throttle = LoginThrottle(5, 60, clock=clock)
    for n in range(5 * SPREAD):
        fail(throttle, 1, f"guess{n}")
    assert throttle.attempt("owner", "attacker").wait == 60  # an email it never tried
    assert throttle.attempt("owner", "elsewhere").wait == 0  # the owner is not
    clock.now += 60
    assert throttle.attempt("owner", "attacker").wait == 0


def test_a_success_gives_its_attempt_back_but_clears_no_address():
    """An attacker logging in to an account of its own between guesses gains nothing."""
    throttle = LoginThrottle(5, 60, clock=Clock())
    for email in ("a", "b", "c"):
        fail(throttle, 5, email)
    fail(throttle, 4, "d")  # 19 of 20
    mine = fail(throttle, 1, "mine")
    throttle.succeeded("mine", "attacker", mine)  # not counted: still 19
    fail(throttle, 1, "mine")  # the 20th
    assert throttle.attempt("e", "attacker").wait > 0


def test_a_success_gives_its_attempt_back_to_the_email_too():
    """An account signed in to often, from many addresses (a shared one), is not slowed by it:
    a mistyped password afterwards leaves the next attempt free."""
    throttle = LoginThrottle(5, 60, clock=Clock())
    for n in range(5 * SPREAD):
        throttle.succeeded("shared", f"desk{n}", fail(throttle, 1, "shared", f"desk{n}"))
    fail(throttle, 1, "shared", "desk0")  # mistyped
    assert throttle.attempt("shared", "desk0").wait == 0


def test_an_attempt_whose_password_was_not_checked_counts_for_nothing():
    """A login that lost the database server as it looked the account up (a 503, or a rerun
    that counts it again) is no guess: given back to the pair, the address and the email."""
    clock = Clock()
    throttle = LoginThrottle(2, 60, clock=clock)
    fail(throttle, 2)
    for _ in range(2):
        throttle.not_checked("owner", "attacker", clock.now)
    fail(throttle, 2)  # the pair's two attempts are there again
    assert throttle.attempt("owner", "attacker").wait == 60
    for n in range(5):  # the email's count: 2 + 5 of 8, its first 2 given back
        fail(throttle, 1, address=f"elsewhere{n}")
    assert throttle.attempt("owner", "bot").wait == 0  # the 8th
    assert throttle._spent == 2  # the locked pair and the used-up email


def test_attempts_not_checked_are_given_back_to_the_address_too():
    """An owner's tries through an outage, at any emails, do not lock its address out."""
    throttle = LoginThrottle(2, 60, clock=Clock())
    for n in range(2 * SPREAD):  # as many as the address's count across emails
        throttle.not_checked(f"email{n}", "attacker", fail(throttle, 1, f"email{n}"))
    assert throttle.attempt("owner", "attacker").wait == 0


def test_attempts_not_checked_are_given_back_to_the_email_too():
    """Tries at one account through an outage, from several devices, do not slow it."""
    throttle = LoginThrottle(2, 60, clock=Clock())
    for n in range(2 * SPREAD):  # as many as the email's count across addresses
        throttle.not_checked("owner", f"desk{n}", fail(throttle, 1, "owner", f"desk{n}"))
    fail(throttle, 1, "owner", "desk0")  # mistyped, once the server is back
    assert throttle.attempt("owner", "desk0").wait == 0


def test_a_give_back_goes_to_the_window_its_attempt_was_counted_in():
    """A login that hung past its whole window (a database server that took minutes to answer)
    gives its attempt back to that window: the next window's count is its own guesses'."""
    clock = Clock()
    throttle = LoginThrottle(2, 60, clock=clock)
    hung = fail(throttle, 1)  # the hung login's attempt, and its mine
    mine = fail(throttle, 1, "mine")
    clock.now += 60
    fail(throttle, 2)  # the pair's new window, used up
    for n in range(2 * SPREAD - 3):  # the address's, up to one short of its 8
        fail(throttle, 1, f"guess{n}")
    throttle.not_checked("owner", "attacker", hung)  # its database server lost, at last
    throttle.succeeded("mine", "attacker", mine)
    assert throttle.attempt("owner", "attacker").wait == 60
    fail(throttle, 1, "mine")  # the address's 8th
    assert throttle.attempt("other", "attacker").wait == 60


def test_an_email_guessed_from_many_addresses_gets_one_attempt_an_address_but_the_owner_in():
    throttle = LoginThrottle(5, 60, clock=Clock())
    for n in range(SPREAD):
        fail(throttle, 5, address=f"bot{n}")  # 20 at the owner's email: as many as it takes
    fail(throttle, 1, address="bot-new")
    assert throttle.attempt("owner", "bot-new").wait > 0  # one attempt, not five
    assert throttle.attempt("other", "bot-new").wait == 0  # other emails as before
    home = fail(throttle, 1, address="home")  # the owner, elsewhere, is not locked out
    throttle.succeeded("owner", "home", home)
    assert throttle.attempt("owner", "home").wait == 0  # the success cleared its pair


def test_at_most_max_keys_are_kept_the_oldest_dropped():
    clock = Clock()
    throttle = LoginThrottle(2, 60, clock=clock)
    for n in range(MAX_KEYS // 3 + 500):
        fail(throttle, 1, f"email{n}", f"address{n}")
        clock.now += 0.001
    assert len(throttle) == MAX_KEYS == 10_000
    fail(throttle, 1, "email600", "address600")  # kept: its second attempt
    assert throttle.attempt("email600", "address600").wait > 0
    fail(throttle, 2, "email499", "address499")  # dropped: a first attempt again


def test_a_store_at_its_bound_makes_room_for_one_new_key_too():
    """A new email from a known address is one key more, not three: room is made for it too."""
    clock = Clock()
    throttle = LoginThrottle(1, 60, max_keys=6, clock=clock)
    fail(throttle, 1, "a", "one")
    clock.now += 1
    fail(throttle, 1, "b", "two")
    assert len(throttle) == 6
    clock.now += 1
    fail(throttle, 1, "a", "two")  # a pair only is new
    assert len(throttle) == 6
    assert ("address", "one") not in throttle._failures  # the oldest that did not use its count


def test_a_key_that_used_up_its_count_is_never_dropped_to_make_room():
    clock = Clock()
    throttle = LoginThrottle(5, 60, max_keys=30, clock=clock)
    fail(throttle, 5)  # the pair is locked; the address and the email have 5 of 20
    for n in range(100):  # cycling emails and addresses
        clock.now += 0.1
        fail(throttle, 1, f"guess{n}", f"bot{n}")
        assert len(throttle) <= 30
    assert throttle.attempt("owner", "attacker").wait == 50  # still locked, from its first attempt
    assert ("address", "attacker") not in throttle._failures  # not used up: dropped


def test_a_new_key_is_refused_rather_than_a_used_up_one_forgotten():
    clock = Clock()
    throttle = LoginThrottle(1, 60, max_keys=4, clock=clock)
    fail(throttle, 1, "a", "one")  # its pair is locked; its address and email (1 of 4) are not
    clock.now += 10
    fail(throttle, 1, "b", "two")  # room made by dropping "one" and "a", not the pair
    clock.now += 10
    # three keys more fit only if a locked pair is dropped: refused until the oldest window ends
    assert throttle.attempt("c", "three").wait == 40
    assert throttle.attempt("a", "one").wait == 40  # still locked
    assert len(throttle) == 4
    clock.now += 40
    fail(throttle, 1, "c", "three")


def test_the_attempts_own_keys_are_not_counted_as_room_to_make():
    """The email's count, which this attempt needs, is not dropped for it: with the rest used
    up, there is no room, and the attempt is refused rather than the store let past its bound."""
    clock = Clock()
    throttle = LoginThrottle(1, 60, max_keys=3, clock=clock)
    fail(throttle, 1, "a", "one")  # its pair used up; its address droppable; its email needed
    clock.now += 10
    assert throttle.attempt("a", "two").wait == 50
    assert len(throttle) == 3


def test_the_count_of_used_up_keys_stays_true():
    """The throttle counts the keys that used up their count as they change, to refuse a new
    key at once when nothing can be dropped; a random run of attempts, successes and time."""
    rng, clock = random.Random(7), Clock()
    throttle = LoginThrottle(2, 60, max_keys=40, clock=clock)
    for _ in range(5000):
        email, address = f"e{rng.randrange(6)}", f"a{rng.randrange(12)}"
        if rng.random() < 0.1:
            throttle.succeeded(email, address, clock.now - rng.random() * 90)
        else:
            throttle.attempt(email, address)
        clock.now += rng.random() * 2
        used_up = [key for key, entry in throttle._failures.items()
                   if throttle._used_up(key, entry)]
        assert throttle._spent == len(used_up)


def test_an_ipv6_address_is_counted_by_its_64_any_other_as_it_is():
    assert client_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_network("2001:DB8:1:2::1") == "2001:db8:1:2::/64"
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network("::ffff:192.0.2.9") == "192.0.2.9"  # IPv4, mapped into IPv6
    assert client_network("192.0.2.9") == "192.0.2.9"
    assert client_network(None) is None  # no REMOTE_ADDR
    assert client_network("unix:/run/app.sock") == "unix:/run/app.sock"


def warnings_of(caplog):
    return [record.getMessage() for record in caplog.records
            if record.name == "fftelemetry.throttle" and record.levelname == "WARNING"]


def test_a_lock_is_logged_once_a_window_whatever_is_given_back(caplog):
    """An attacker logging in to its own account between guesses gives an attempt back to its
    address's count and takes it again: the lock it reaches anew is not a line anew."""
    clock = Clock()
    throttle = LoginThrottle(5, 60, clock=clock)
    for n in range(5 * SPREAD):
        fail(throttle, 1, f"guess{n}")
    for _ in range(3):
        assert throttle.attempt("owner", "attacker").wait > 0
    # a login let in before the lock, right after it
    throttle.succeeded("mine", "attacker", clock.now)
    fail(throttle, 1, "mine")
    assert throttle.attempt("owner", "attacker").wait > 0
    assert len(warnings_of(caplog)) == 1
    clock.now += 60
    for n in range(5 * SPREAD):
        fail(throttle, 1, f"guess{n}")
    assert throttle.attempt("owner", "attacker").wait > 0
    assert warnings_of(caplog)[1:] == [
        "login: attacker is locked out of every account for 60 s (20 attempts across accounts "
        "within 60 s); refused at 'owner'"
    ]


def test_a_slowed_email_is_logged_once_a_window(caplog):
    clock = Clock()
    throttle = LoginThrottle(5, 60, clock=clock)
    for n in range(SPREAD):
        fail(throttle, 5, address=f"bot{n}")
    assert warnings_of(caplog) == []
    fail(throttle, 1, address="bot-new")
    assert throttle.attempt("owner", "bot-new").wait > 0
    fail(throttle, 1, address="bot-newer")
    assert warnings_of(caplog) == [
        "login: 'owner' is slowed to 1 attempt an address for 60 s (20 attempts at it from "
        "several addresses within 60 s); this one from bot-new"
    ]


def test_a_full_store_is_logged_once_a_window(caplog):
    clock = Clock()
    throttle = LoginThrottle(1, 60, max_keys=3, clock=clock)
    fail(throttle, 1, "a", "one")  # its pair is used up: never dropped
    for n in range(5):
        assert throttle.attempt("b", f"bot{n}").wait == 60
    clock.now += 59
    assert throttle.attempt("b", "bot").wait == 1
    assert len(warnings_of(caplog)) == 1
    clock.now += 1
    fail(throttle, 1, "c", "two")  # the window is over: its keys expired
    assert throttle.attempt("b", "bot").wait == 60
    assert warnings_of(caplog)[1:] == [
        "login: all 3 keys of the login throttle refuse or slow a guesser: /login refuses every "
        "address and email not yet counted for up to 60 s; refused bot at 'b'"
    ]
