"""Conflicting transactions are rerun by pyramid_retry. Before each rerun we log one line (so an
operator sees contention without a traceback) and wait a short random time: requests that just
collided (two registrations both counting users, say) would otherwise collide again at once.
"""

import logging
import random
import time

from pyramid_retry import IBeforeRetry

from .failures import retried_after
from .shown import request_line

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 0.02  # doubled for every further attempt (up to a cap), then a random part
BACKOFF_CAP_SECONDS = 0.5


def backoff(attempt):
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not secrecy


def before_retry(event):
    request = event.request
    attempt = request.environ.get("retry.attempt", 0)
    log.info(
        "retrying %s after %s (attempt %d of %d)",
        request_line(request),
        retried_after(event.exception),
        attempt + 2,
        request.environ.get("retry.attempts", 0),
    )
    time.sleep(backoff(attempt))


def includeme(config):
    config.add_subscriber(before_retry, IBeforeRetry)
