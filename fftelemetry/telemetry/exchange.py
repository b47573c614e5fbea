"""One POST of a batch to the receiver, bounded in time and in size, and what its answer means.

Retries: urllib3 retries connection errors only (nothing has reached the receiver yet). A POST that
was sent is never retried within a run, although it would be harmless (the record ids make it
idempotent): a receiver that is slow or failing is better left alone until the next run (the next
daily cron, or the next click) than hammered.

Bounds: the timeouts bound each wait for the next byte, so a deadline bounds the whole exchange
(a receiver trickling a byte a second would otherwise hold a cron run, or the web worker behind
"submit now", for ever), and an answer is read only up to MAX_ANSWER_BYTES. A cut ends any wait
on a socket at once, but not a look-up of the receiver's host name (getaddrinfo cannot be cut
short, and a resolver that does not answer holds it for resolv.conf's timeouts, at each try): so
the exchange has a thread of its own, left behind past the deadline, and a connection it makes
after the cut is cut as soon as it is made, before it sends anything.
"""

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
import weakref
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProxySchemeUnknown
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from .. import __version__
from ..settings import shown_url
from ..shown import shown
from ..uuids import parse_uuid
from .failure_lines import (
    CONNECT_RETRIES,
    LOGGED_BODY_CHARS,
    not_json,
    servers_own,
    smaller_batches,
    their_reason,
    why_failed,
)

# The submission's one logger, whichever module logs: operators filter their logs on it.
log = logging.getLogger("fftelemetry.telemetry.sender")

# Our receiver answers ~50 bytes: an answer past this is no acknowledgement, and is not read on.
MAX_ANSWER_BYTES = 1024 * 1024
# How long past its deadline an exchange may take to end once cut: a wait on a socket ends at once
CUT_GRACE = 1
# RFC 9562's two placeholder values
PLACEHOLDER_UUIDS = {uuid.UUID(int=0): "the nil uuid", uuid.UUID(int=2**128 - 1): "the max uuid"}


def _not_a_retry_notice(record):
    # urllib3 warns on each connection retry; our one WARNING line after the last try says it.
    return not record.getMessage().startswith("Retrying (")


logging.getLogger("urllib3.connectionpool").addFilter(_not_a_retry_notice)


class SubmissionFailed(Exception):
    """An expected failure of one POST; its message is one line for the operator."""

    def __init__(self, reason, status=None):
        super().__init__(reason)
        self.status = status


def make_session():
    """A requests Session (a context manager that closes its connections) that retries failed
    connections, only those: nothing has reached the receiver then. It keeps no cookie."""
    retry = Retry(
        total=CONNECT_RETRIES,
        connect=CONNECT_RETRIES,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=0.2,
        raise_on_status=False,
    )
    session = requests.Session()
    # No cookie is kept, so none goes back: a receiver (or a balancer in front) that sets one
    # would get it back with the run's next batches: a mark that ties them together
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = CuttableAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"fftelemetry/{__version__}",
        }
    )
    return session


class CuttableAdapter(HTTPAdapter):
    """An HTTPAdapter that knows the connections it opened, so that an exchange past its
    deadline (see "Bounds" above) can be cut short: their sockets are shut down."""

    def __init__(self, **kwargs):
        self.connections = weakref.WeakSet()
        self.is_cut = False  # for good: the run stops at the exchange that was cut
        self._connections_lock = threading.Lock()  # a retry may open one while cut() runs
        super().__init__(**kwargs)

    def remember(self, connection, sock):
        with self._connections_lock:
            self.connections.add(connection)
            too_late = self.is_cut  # made by an exchange left behind: its name's look-up ended
        if too_late:
            _shut_down(sock)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self._track(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        try:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        except ValueError as exc:
            # urllib3's SOCKSProxyManager refuses a version it does not know (socks6://) with a
            # bare ValueError, which post_batch raises again (not a request's failure): raised as
            # the ProxySchemeUnknown urllib3 raises for ftp://, requests fails the request with
            # it (InvalidURL) and the run says why in one line. Its subclasses are left alone
            # (requests' InvalidSchema without PySocks, urllib3's LocationParseError).
            if type(exc) is not ValueError or not proxy.lower().startswith("socks"):
                raise
            raise ProxySchemeUnknown(parse_url(proxy).scheme) from exc
        return self._track(manager)

    def _track(self, manager):
        if not getattr(manager, "_fftelemetry_tracked", False):
            manager.pool_classes_by_scheme = {
                scheme: _tracking(pool_class, self)
                for scheme, pool_class in manager.pool_classes_by_scheme.items()
            }
            manager._fftelemetry_tracked = True
        return manager

    def cut(self):
        with self._connections_lock:
            self.is_cut = True
            connections = list(self.connections)
        for conn in connections:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                _shut_down(sock)


def _shut_down(sock):
    with contextlib.suppress(OSError):  # the plain socket's: an SSLSocket's own would drop its
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # state


def _tracking(pool_class, adapter):
    class Connection(pool_class.ConnectionCls):
        def _new_conn(self):
            sock = super()._new_conn()
            adapter.remember(self, sock)
            return sock

    return type(pool_class.__name__, (pool_class,), {"ConnectionCls": Connection})


def exchange_deadline(settings):
    """The longest one POST may take, answer included: every connection attempt, then the
    receiver's time to answer, and a second to spare (the retries' backoff is less)."""
    return (CONNECT_RETRIES + 1) * settings.connect_timeout + settings.read_timeout + 1


def post_batch(session, settings, body):
    """POST one batch; (status, uuid) on acknowledgement, else SubmissionFailed."""
    url = settings.telemetry_url + "/submit"
    address = shown_url(url)
    deadline = exchange_deadline(settings)
    adapter = session.get_adapter(url)
    was_cut, ended, lock = threading.Event(), threading.Event(), threading.Lock()
    result = {}

    def cut():
        # Never once this exchange has ended: the next batch's may be on the connection.
        with lock:
            if not ended.is_set():
                was_cut.set()
                adapter.cut()

    def exchange():
        try:
            result["answer"] = _exchange(session, settings, url, body)
        except BaseException as exc:  # raised again by the caller, unless the cut came first
            result["failure"] = exc
        finally:
            with lock:
                ended.set()

    started = time.monotonic()
    threading.Thread(target=exchange, name="telemetry-exchange", daemon=True).start()
    if not ended.wait(deadline):
        cut()
        # a wait on a socket ends at once; a name's look-up does not (see "Bounds" above), and
        # its thread is left behind
        ended.wait(CUT_GRACE)
    # Checked first: cut in its headers, http.client may even take what came for an answer.
    if was_cut.is_set():
        raise SubmissionFailed(f"no complete answer from {address} within {deadline:g}s")
    failure = result.get("failure")
    # OSError: RequestException's too; UnicodeError: a user name or password requests cannot
    # encode
    if failure is not None and not isinstance(failure, (OSError, Urllib3Error, UnicodeError)):
        raise failure
    if failure is not None:
        raise SubmissionFailed(why_failed(failure, address, started, settings))
    status, content_type, content = result["answer"]
    if content is None:
        raise SubmissionFailed(
            f"the receiver's answer (HTTP {status}) is larger than {MAX_ANSWER_BYTES} bytes",
            status,
        )
    text = content.decode("utf-8", errors="replace")
    log.info("Result of submission [%s]: %s", status, shown(text, LOGGED_BODY_CHARS))
    if status != 200:
        answer_kind = not_json(content_type, content)
        servers = servers_own(status, content_type, content, answer_kind, settings)
        if servers:
            raise SubmissionFailed(servers, status)
        if answer_kind:  # a web server's or a proxy's page, not our receiver's: a wrong URL, say
            raise SubmissionFailed(
                f"the receiver answered HTTP {status} with {answer_kind}, not a receiver's JSON: "
                f"is {address} the receiver's address?",
                status,
            )
        # the receiver's own limit (receiver.max_records, max_body_bytes): as for its server's
        too_large = f": {smaller_batches(settings)}" if status == 413 else ""
        raise SubmissionFailed(
            f"the receiver answered HTTP {status}{their_reason(content)}{too_large}", status
        )
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):
        raise SubmissionFailed("the receiver's answer is not JSON", 200) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("uuid"), str):
        raise SubmissionFailed("the receiver's answer holds no uuid", 200)
    try:
        # Anything else that answers 200 with JSON (a wrong URL, a proxy's page) has not
        # stored the batch: only a real uuid marks records submitted.
        reference = parse_uuid(answer["uuid"])
    except ValueError:
        raise SubmissionFailed("the receiver's answer holds no valid uuid", 200) from None
    if reference in PLACEHOLDER_UUIDS:  # no reference to a stored batch
        raise SubmissionFailed(
            f"the receiver's answer holds no valid uuid ({PLACEHOLDER_UUIDS[reference]})", 200
        )
    return 200, str(reference)


def _exchange(session, settings, url, body):
    """(status, Content-Type, body) of the POST; body None if longer than MAX_ANSWER_BYTES (not
    read on)."""
    with session.post(
        url,
        data=body,
        timeout=(settings.connect_timeout, settings.read_timeout),
        allow_redirects=False,
        auth=address_auth(url),
        stream=True,
        # the setting's CAs, else requests' own (True: certifi's, or REQUESTS_CA_BUNDLE's)
        verify=settings.telemetry_ca_bundle or True,
    ) as response:
        content = bytearray()
        for chunk in response.iter_content(16 * 1024):
            content += chunk
            if len(content) > MAX_ANSWER_BYTES:
                return response.status_code, None, None
        return response.status_code, response.headers.get("Content-Type", ""), bytes(content)


def address_auth(url):
    """The login the receiver's address holds (user:password@, or a user name alone: a token),
    in Basic auth, and never ~/.netrc's, which requests adds to an address without one (its
    `default` line: for every host): a login kept there for other tools is not the receiver's
    to get. Not requests' get_auth_from_url: it finds no login in a user name alone."""
    parts = urlsplit(url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if user or password:
        return HTTPBasicAuth(user, password)
    return no_login


def no_login(request):
    """requests' auth that adds nothing: given, requests looks for none in ~/.netrc."""
    return request
