"""One POST of a batch to the receiver, bounded in time and in size, and what its answer means.

Retries: urllib3 retries connection errors only (nothing has reached the receiver yet). A POST that
was sent is never retried within a run, although it would be harmless (the record ids make it
idempotent): a receiver that is slow or failing is better left alone until the next run (the next
daily cron, or the next click) than hammered.

Bounds: the timeouts bound each wait for the next byte, so a deadline bounds the whole exchange
(a receiver trickling a byte a second would otherwise hold a cron run, or the web worker behind
"submit now", for ever), and an answer is read only up to MAX_ANSWER_BYTES.
"""

import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
import weakref

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from .. import __version__
from ..settings import CA_BUNDLE_VARIABLE, QUOTED_PATH_CHARS, shown_url
from ..shown import quoted, shown
from ..uuids import parse_uuid

# The submission's one logger, whichever module logs: operators filter their logs on it.
log = logging.getLogger("fftelemetry.telemetry.sender")

# A receiver's answer and reason, escaped (fftelemetry.shown), are cut to this: an escape is up to
# ten characters, and the flash that carries a reason, in the session cookie, has no room for ten
# times as many.
LOGGED_BODY_CHARS = 300
# Our receiver answers ~50 bytes: an answer past this is no acknowledgement, and is not read on.
MAX_ANSWER_BYTES = 1024 * 1024
CONNECT_RETRIES = 2
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
NAME_MISMATCH = {62, 64}
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
    connections, only those: nothing has reached the receiver then."""
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
        self._connections_lock = threading.Lock()  # a retry may open one while cut() runs
        super().__init__(**kwargs)

    def remember(self, connection):
        with self._connections_lock:
            self.connections.add(connection)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self._track(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return self._track(super().proxy_manager_for(proxy, **proxy_kwargs))

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
            connections = list(self.connections)
        for conn in connections:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):  # the plain socket's: an SSLSocket's own
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # would drop its state


def _tracking(pool_class, adapter):
    class Connection(pool_class.ConnectionCls):
        def _new_conn(self):
            sock = super()._new_conn()
            adapter.remember(self)
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
    was_cut, lock = threading.Event(), threading.Lock()
    finished = False

    def cut():
        # Never once this exchange has finished: the next batch's may be on the connection.
        with lock:
            if not finished:
                was_cut.set()
                adapter.cut()

    timer = threading.Timer(deadline, cut)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    failure = None
    try:
        status, content_type, content = _exchange(session, settings, url, body)
    except (OSError, Urllib3Error, UnicodeError) as exc:  # OSError: RequestException's too
        failure = exc  # UnicodeError: a user name or password requests cannot encode
    finally:
        with lock:
            finished = True
        timer.cancel()
    # Checked first: cut in its headers, http.client may even take what came for an answer.
    if was_cut.is_set():
        raise SubmissionFailed(f"no complete answer from {address} within {deadline:g}s")
    if failure is not None:
        raise SubmissionFailed(_why_failed(failure, address, started, settings))
    if content is None:
        raise SubmissionFailed(
            f"the receiver's answer (HTTP {status}) is larger than {MAX_ANSWER_BYTES} bytes",
            status,
        )
    text = content.decode("utf-8", errors="replace")
    log.info("Result of submission [%s]: %s", status, shown(text, LOGGED_BODY_CHARS))
    if status != 200:
        not_json = _not_json(content_type, content)
        if not_json:  # a web server's or a proxy's page, not our receiver's: a wrong URL, say
            raise SubmissionFailed(
                f"the receiver answered HTTP {status} with {not_json}, not a receiver's JSON: "
                f"is {address} the receiver's address?",
                status,
            )
        raise SubmissionFailed(
            f"the receiver answered HTTP {status}{_their_reason(content)}", status
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


def _why_failed(exc, url, started, settings):
    """One line for a request that failed before an answer was read in full."""
    cause = _urllib3_error(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"connecting to {url} timed out after {settings.connect_timeout:g}s"
    if isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return no_answer(url, time.monotonic() - started, settings)
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_failure(exc, url, settings)
    if isinstance(exc, requests.exceptions.InvalidProxyURL):  # before InvalidURL, its base
        # HTTPS_PROXY=localhost:3128: its host is read as a scheme, for want of one
        named = _proxy_variable_named(settings) or "it"
        return f"the proxy for {url} cannot be used: {named} names no host (write http://host:port)"
    socks = _socks_proxy_named(settings)
    if isinstance(exc, requests.exceptions.InvalidSchema) and socks:
        # requests' stand-in for urllib3's SOCKS support when PySocks is not installed
        return (
            f"the proxy for {url} cannot be used: {socks} is a SOCKS proxy, which needs PySocks "
            "(pip install 'requests[socks]')"
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        why = _tunnel_refused(exc) or _not_connected(exc)
        return f"cannot connect to {_proxy_named(exc)} for {url} ({why})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or (
        isinstance(exc, requests.ConnectionError) and isinstance(cause, ProtocolError)
    ):
        return f"{url} closed the connection without a complete answer"
    if isinstance(exc, requests.ConnectionError):
        # with the system's reason: a misspelt host would read as a receiver that is down
        return f"cannot connect to {url} ({_not_connected(exc)})"
    variable, path = ca_bundle(settings)
    if not isinstance(exc, requests.RequestException) and variable and not os.path.exists(path):
        # requests' own OSError, before connecting: not the database's, nor a write's
        return f"the certificate of {url} cannot be checked: {variable}={path} does not exist"
    if isinstance(exc, (requests.exceptions.InvalidURL, Urllib3Error, UnicodeError)):
        return f"{url} is not a URL the sender can use ({type(exc).__name__})"
    return f"the request to {url} failed ({type(exc).__name__})"


def _not_connected(exc):
    """"connection refused; tried 3 times": the system's reason, if there is one, and the tries."""
    said = [_socket_reason(exc), f"tried {CONNECT_RETRIES + 1} times"]
    return "; ".join(filter(None, said))


def _urllib3_error(exc):
    """The urllib3 error requests wraps in `exc` (a MaxRetryError, whose `reason` is the last
    try's), or None."""
    return exc.args[0] if exc.args else None


def _socket_reason(exc):
    """The system's reason a connection failed ("connection refused", "name or service not
    known"), from under urllib3's wrapping (one layer deeper for a proxy's), or None."""
    seen = getattr(_urllib3_error(exc), "reason", None)
    for _ in range(3):
        said = getattr(seen, "strerror", None)
        if isinstance(said, str) and said:
            return said[:1].lower() + said[1:]
        seen = getattr(seen, "__cause__", None)
    return None


def _tunnel_refused(exc):
    """"it answered 407 Proxy Authentication Required": a proxy that answered the CONNECT for an
    https receiver with an error (http.client's "Tunnel connection failed: 407 …", once, as it
    is not a connection failure urllib3 retries), else None."""
    seen = getattr(_urllib3_error(exc), "reason", None)
    said = str(getattr(seen, "original_error", "") or "")
    status = said.removeprefix("Tunnel connection failed: ")
    return f"it answered {shown(status, 100)}" if status != said else None


def _proxy_named(exc):
    """"the proxy http://host:port (HTTPS_PROXY)": the proxy a connection failed to (a password
    in it shown as ***) and the variable requests took it from, or "the proxy"."""
    proxy = getattr(getattr(_urllib3_error(exc), "pool", None), "proxy", None)
    if proxy is None:
        return "the proxy"
    auth = f"{proxy.auth}@" if proxy.auth else ""
    named = f"the proxy {shown_url(f'{proxy.scheme}://{auth}{proxy.netloc}')}"
    variable, _ = _proxy_setting(getattr(exc.request, "url", None) or "")
    return f"{named} ({variable})" if variable else named


def _proxy_variable_named(settings):
    """"HTTPS_PROXY='http://host:3128'": the proxy variable requests takes for the receiver, as
    a line shows it (a password as ***), or None."""
    variable, proxy = _proxy_setting(settings.telemetry_url + "/submit")
    return f"{variable}={quoted(shown_url(proxy), QUOTED_PATH_CHARS)}" if variable else None


def _socks_proxy_named(settings):
    """The proxy for the receiver, named as _proxy_variable_named does (or "the proxy"), if it
    is a SOCKS one (socks5://, socks5h://, socks4://, socks4a://); else None."""
    url = settings.telemetry_url + "/submit"
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if not (proxy or "").lower().startswith("socks"):
        return None
    return _proxy_variable_named(settings) or "it"


def _proxy_setting(url):
    """(variable, value) of the proxy variable requests takes for `url`, else (None, None)."""
    # requests' own choice, made again: each key stands for itself, so the one it took comes back
    proxies = requests.utils.get_environ_proxies(url)
    key = requests.utils.select_proxy(url, {key: key for key in proxies})
    for variable in (f"{key}_proxy", f"{key.upper()}_PROXY") if key else ():
        if os.environ.get(variable) == proxies[key]:  # lower case first: urllib prefers it
            return variable, proxies[key]
    return None, None


def ca_bundle(settings):
    """What a receiver's certificate is checked against: the setting, or else the variable
    requests looks up, naming a file (or folder) of CA certificates, and its value; else (None,
    certifi's file)."""
    if settings.telemetry_ca_bundle:
        return settings.ca_bundle_setting, settings.telemetry_ca_bundle
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(variable):
            return variable, os.environ[variable]
    return None, requests.certs.where()


def _tls_failure(exc, url, settings):
    """What went wrong in the TLS handshake, from the ssl error deep in requests' wrapping."""
    seen = exc
    while seen is not None and not isinstance(seen, ssl.SSLError):
        inner = seen.args[0] if seen.args else None
        seen = inner if isinstance(inner, BaseException) else getattr(seen, "reason", None)
    if isinstance(seen, ssl.SSLCertVerificationError):
        why = f"the certificate of {url} was not accepted: {seen.verify_message.rstrip('.')}"
        if seen.verify_code in NAME_MISMATCH:
            return why  # its CA was trusted
        # A variable set in a login shell, not in cron's environment (nor read from .env), is
        # not there at all: say which CAs were used.
        variable, path = ca_bundle(settings)
        if variable:
            return f"{why} (checked against {variable}={path})"
        hint = f"name a CA of your own in {CA_BUNDLE_VARIABLE}"
        return f"{why} (checked against certifi's CAs: {hint})"
    reason = getattr(seen, "reason", None)
    if reason == "NO_CERTIFICATE_OR_CRL_FOUND":  # the CAs' file, read before connecting
        variable, path = ca_bundle(settings)
        cas = f"{variable}={path}" if variable else f"certifi's file {path}"
        return f"the certificate of {url} cannot be checked: {cas} holds no PEM certificate"
    return f"the TLS handshake with {url} failed ({reason or 'SSLError'})"


def no_answer(url, waited, settings):
    """A read timeout, naming the timeout that ran out (the one nearer the time waited): a TLS
    handshake's is the connect timeout (an https:// URL for a plain-HTTP receiver waits so)."""
    connect, read = settings.connect_timeout, settings.read_timeout
    if connect == read or abs(waited - read) <= abs(waited - connect):
        return f"no answer from {url} within {read:g}s"
    said = f"no answer from {url} within {connect:g}s"
    if url.startswith("https://"):
        said += " (the TLS handshake got no answer: does the receiver speak https?)"
    return said


def _not_json(content_type, content):
    """What an answer that is not JSON is ("an HTML page"), by its Content-Type and whether it
    parses; None for JSON."""
    media = content_type.partition(";")[0].strip().lower()
    said = shown(media, 40)  # judged whole: a vendor's +json type runs past what is quoted
    if not content:
        return "an empty answer"
    if media == "application/json" or media.endswith("+json"):
        try:
            json.loads(content)
        except (ValueError, RecursionError):
            return f"an answer of type {said} that does not parse"
        return None
    if media in ("text/html", "application/xhtml+xml"):
        return "an HTML page"
    return f"an answer of type {said}" if media else "an answer with no Content-Type"


def _their_reason(content):
    """": <the receiver's JSON error>" (ours names the record and field), or nothing."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, RecursionError, AttributeError):
        return ""
    return f": {shown(error, LOGGED_BODY_CHARS)}" if isinstance(error, str) else ""
