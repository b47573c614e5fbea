"""Benchmarks: prints one `name: value unit` line per figure, every ratio from the same run.

    .venv/bin/python scripts/bench.py [--quick] [--only NAME ...]

Each measurement runs in a child process of its own (so `peak_rss_mb` is that measurement's
peak), on a copy of a database prepared once per run. The two sides of a ratio are measured
interleaved (a record in one store, then in the other; a page of each in turn; half a second of
load on each server in turn), so a slow spell of a shared machine lands on both sides alike.
--quick uses 100,000 records where the full run uses 1,000,000 (names keep their `_1m` suffix;
the header line says what was used). --only runs some of the measurements:
submit, bytes, collect, view, status, delete.
"""

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from fftelemetry.settings import VARIABLES  # noqa: E402 - from the checkout beside this script

# The app reads these over the settings a benchmark gives it: an operator's exported ZODBCONN_URI
# would have pointed a million records at the operator's own database, and SEND_TELEMETRY=false
# turned collecting off. Gone for this process and its children (scripts/instructions.py's too).
for name in VARIABLES:
    os.environ.pop(name, None)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "benchmark-secret-0123456789"  # noqa: S105 - a throwaway database's
ADMIN = ("admin@example.org", "correct horse battery staple")


# -- helpers used inside the child processes ------------------------------------------------


def open_db(path):
    from ZODB import DB
    from ZODB.FileStorage import FileStorage

    return DB(FileStorage(str(path)), cache_size=20_000)


def fill(path, total, pending, chunk=20_000):
    """`total` feature records, all but the newest `pending` marked submitted."""
    from fftelemetry.resources import telemetry_store_in

    db = open_db(path)
    for start in range(0, total, chunk):
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            for i in range(start, min(start + chunk, total)):
                store.add_feature("system.users.count", i, T0 + timedelta(microseconds=i))
            submit_upto = total - pending
            seqs = [seq for seq, record in store.pending_batch(chunk) if record.value < submit_upto]
            store.mark_submitted(seqs, "bench-batch", T0)
        db.cacheMinimize()
    db.pack()
    db.close()


def app_for(path, **extra):
    from fftelemetry import main

    settings = {
        "zodbconn.uri": f"file://{path}?connection_cache_size=20000",
        "fftelemetry.session_secret": SECRET,
        "fftelemetry.send_telemetry": "true",
        "fftelemetry.env_file": os.devnull,  # not the .env of whoever runs the benchmark
    }
    settings.update(extra)
    return main({"here": str(Path(path).parent)}, **settings)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


# -- measurements (each runs in a child) ----------------------------------------------------


def measure_collect(stores, rounds=300):
    """Mean cost of one collected feature record, through the app, one commit each, in each
    store: a record in one, then in the other, so a slow spell of the machine hits both alike."""
    from fftelemetry.scripting import close_databases, request_environment

    apps = {label: app_for(path) for label, path in stores.items()}
    base = 5_000_000  # values no fill used

    def collect(app, value):
        with request_environment(app.registry) as env:
            record = env["request"].telemetry.collect("system.users.count", value)
            assert record is not None

    for app in apps.values():
        for i in range(20):  # warm the connection cache
            collect(app, base - i - 1)
    elapsed = dict.fromkeys(apps, 0.0)
    for i in range(rounds):
        for label, app in apps.items():
            started = time.perf_counter()
            collect(app, base + i)
            elapsed[label] += time.perf_counter() - started
    for label, app in apps.items():
        close_databases(app.registry)
        emit(f"collect_us_at_{label}", round(elapsed[label] / rounds * 1e6, 1), "us")


def signed_in_testapp(app):
    import webtest

    testapp = webtest.TestApp(app)
    form = testapp.get("/register").forms["register"]
    form["email"], form["password"] = ADMIN
    form.submit(status=303)  # the first account is the admin, signed in at once
    testapp.get("/")  # shows the "Welcome!" message once, as a new user sees it; then it is gone
    return testapp


def records_pages(path):
    """A signed-in WebTest app on the store, and the records page's URLs to time: the first
    page and one deep in the middle."""
    from fftelemetry.resources import telemetry_store_in
    from fftelemetry.resources.store import PAGE_SIZE, new_sequence

    db = open_db(path)
    with db.transaction() as conn:
        total = telemetry_store_in(conn.root()).counts()["all"]
    db.close()
    # fill() collected record i at T0 + i microseconds. The deep page is the one below the
    # middle record; a store of two pages or less has no such page, so there it is the keyset
    # page from above the newest record: the same ?before= code path, a full page of rows.
    deep = total // 2 if total > 2 * PAGE_SIZE else total
    before = new_sequence(T0 + timedelta(microseconds=deep))
    testapp = signed_in_testapp(app_for(path))
    urls = ["/admin/telemetry/view", f"/admin/telemetry/view?before={before}"]
    for url in urls:
        assert testapp.get(url).status_int == 200
    return testapp, urls


def measure_view(stores, rounds=100):
    """The records pages of each store, in turn (so a slow spell of the machine hits both
    alike): the median time of each page, the two pages averaged."""
    pages = {label: records_pages(path) for label, path in stores.items()}
    timings = {(label, url): [] for label, (_, urls) in pages.items() for url in urls}
    for _ in range(rounds):
        for label, (testapp, urls) in pages.items():
            for url in urls:
                started = time.perf_counter()
                testapp.get(url)
                timings[label, url].append((time.perf_counter() - started) * 1000)
    for label, (_, urls) in pages.items():
        # medians: a stall from outside (another tenant, a full garbage collection) moves a
        # mean by tens of percent, and this figure is about the page, not the machine
        medians = [statistics.median(timings[label, url]) for url in urls]
        emit(f"view_ms_at_{label}", round(sum(medians) / len(medians), 2), "ms")


def list_records(stores, rounds=30):
    """The records pages served `rounds` times each: the child's peak memory is the figure."""
    for path in stores.values():
        testapp, urls = records_pages(path)
        for _ in range(rounds):
            for url in urls:
                testapp.get(url)


def measure_delete_submitted(path):
    from fftelemetry.resources import telemetry_store_in

    db = open_db(path)
    started = time.perf_counter()
    with db.transaction() as conn:
        store = telemetry_store_in(conn.root())
        deleted = store.delete_submitted()
    elapsed = time.perf_counter() - started
    db.close()
    emit("delete_submitted_s_1m", round(elapsed, 4), "s")
    emit("delete_submitted_records", deleted, "records")


def measure_submit(path, receiver_url, total):
    """Records per second from pending to marked, through the real receiver over loopback."""
    from fftelemetry.scripting import close_databases
    from fftelemetry.telemetry.sender import submit_pending

    app = app_for(path, **{"fftelemetry.telemetry_url": receiver_url})
    db = app.registry._zodb_databases[""]
    started = time.perf_counter()
    outcome = submit_pending(db, app.registry.app_settings)
    elapsed = time.perf_counter() - started
    close_databases(app.registry)
    if not outcome.ok or outcome.sent != total:
        raise SystemExit(f"bench: submission failed: {outcome.message()}")
    emit("submit_records_per_s", round(total / elapsed), "records/s")
    emit("submit_s", round(elapsed, 2), "s")


def measure_bytes(path, total):
    emit("bytes_per_record", round(os.path.getsize(path) / total, 1), "bytes")


# -- servers for the requests-per-second figures ---------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(kind, path, port):
    """Child process: waitress serving the app (or the plain hello app) until killed."""
    import logging

    import waitress

    # "Task queue depth is 1" on every request that waits for a thread: noise here
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    if kind == "receiver":
        from fftelemetry.receiver import main as receiver_main

        app = receiver_main({}, **{"zodbconn.uri": f"file://{path}"})
    elif kind == "hello":
        from pyramid.config import Configurator
        from pyramid.response import Response

        with Configurator() as config:
            config.add_route("hello", "/")
            config.add_view(lambda request: Response("hello"), route_name="hello")
            app = config.make_wsgi_app()
    elif kind == "stack":
        app = stack_app(path)
    elif kind == "untemplated":
        # scripts/ is first on sys.path when this file runs, so "bench" imports it by name
        app = app_for(path, **{"pyramid.includes": "bench.untemplated_status"})
    else:
        app = app_for(path)
    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True)


def untemplated_status(config):
    """`pyramid.includes` hook for the "untemplated" server: the status page at
    /admin/telemetry/untemplated, from the real app with its security, traversal and view, the
    same facts and layout values, but its HTML joined by f-strings instead of rendered by
    Chameleon. Its rate is the ceiling any template for the page could reach."""
    from html import escape

    from pyramid.csrf import get_csrf_token
    from pyramid.response import Response

    from fftelemetry.resources import TelemetryAdmin
    from fftelemetry.views import pop_flash
    from fftelemetry.views.admin_telemetry import status

    def view(context, request):
        values = status(context, request)  # the real page's view: its facts and URLs
        facts, user, home = values["facts"], request.identity, request.application_url + "/"
        flashes = "".join(
            f'<p class="{queue}">{escape(message)}</p>'
            for queue in ("info", "error") for message in pop_flash(request.session, queue)
        )
        last = facts.last_submission
        runs = "".join(
            f"<tr><td>{values['when'](run.at)}</td><td>{run.sent}</td><td>{run.status}</td>"
            f"<td>{escape(run.uuid if run.ok else run.error)}</td></tr>"
            for run in facts.submissions
        )
        records = home + "admin/telemetry/view"  # as the template writes its links
        older = (
            f'<p>The newest {len(facts.submissions)} of the {facts.submissions_kept} submissions '
            f'kept: <a href="{home}admin/telemetry/submissions">see all</a></p>'
            if facts.older_submissions else ""
        )
        overdue = (
            f'<p class="error page-error" role="alert">Submissions overdue since '
            f"{values['when'](facts.overdue_since)}</p>" if facts.overdue else ""
        )
        cron_off = (
            f'<p class="error page-error" role="alert">fftelemetry cron found telemetry off at '
            f"{values['when'](facts.cron_found_off_at)}</p>" if facts.cron_found_off_at else ""
        )
        return Response(
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Telemetry'
            f'</title><link rel="stylesheet" href="{home}static/style.css"></head><body>'
            f"<header><nav>"
            f'<a class="brand" href="{home}">fftelemetry</a>'
            f'<a href="{home}admin/telemetry">Telemetry</a>'
            f'<a href="{home}admin/telemetry/view">Records</a>'
            f'<a href="{home}preferences">Preferences</a>'
            f'<form method="post" action="{home}logout"><span>{escape(user.email)} (admin)'
            f'</span><input type="hidden" name="csrf_token" value="{get_csrf_token(request)}">'
            f"<button>Log out</button></form></nav></header><main>{flashes}<h1>Telemetry</h1>"
            f"<p>Telemetry is <strong>{'enabled' if facts.enabled else 'disabled'}</strong>,"
            f" set by {escape(values['source'])}.</p>{HOW_TO_SWITCH}{overdue}{cron_off}"
            f"<dl><dt>Installation id</dt><dd>{facts.installation_id or 'none yet'}</dd>"
            f"<dt>Sends to</dt><dd><code>{escape(facts.endpoint)}</code></dd>"
            f'<dt>Records</dt><dd><a href="{records}?show=all">{facts.counts["all"]}</a> in all:'
            f' <a href="{records}?show=pending">{facts.counts["pending"]}</a> pending,'
            f' <a href="{records}?show=submitted">{facts.counts["submitted"]}</a> submitted</dd>'
            f"<dt>Last submission</dt><dd>{'never' if last is None else values['when'](last.at)}"
            f"</dd><dt>Last success</dt><dd>{values['when'](facts.last_success_at) or 'never'}"
            f"</dd><dt>Next submission</dt><dd>{values['when'](facts.next_due) or 'due now'}"
            f"</dd></dl><table>{runs}</table>{older}{values['catalog_table']}</main></body></html>"
        )

    config.add_view(view, context=TelemetryAdmin, name="untemplated", request_method="GET")


# The status page's fixed explanation, so that both pages send about as many bytes.
HOW_TO_SWITCH = "<details><summary>How to switch it on or off</summary>" + (
    "<p>Set <code>SEND_TELEMETRY=true</code> (or <code>false</code>) in the environment, the"
    " <code>.env</code> file or the ini file, then restart the application.</p>" * 10
) + "</details>"


def stack_app(path):
    """The "hello" view behind what every page of the application pays before its own work:
    pyramid_retry, pyramid_tm, a ZODB connection from the pool and the app's signed session."""
    from pyramid.config import Configurator
    from pyramid.response import Response
    from pyramid_zodbconn import get_connection

    from fftelemetry.request import use_app_request
    from fftelemetry.security import session_factory

    def hello(request):
        get_connection(request).root()
        if "who" not in request.session:  # the first request sets the cookie, later ones read it
            request.session["who"] = ADMIN[0]
        return Response("hello")

    settings = {
        "tm.manager_hook": "pyramid_tm.explicit_manager",
        "zodbconn.uri": f"file://{path}?connection_cache_size=20000",
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_retry")
        config.include("pyramid_tm")
        use_app_request(config)  # as fftelemetry.main does
        config.include("pyramid_zodbconn")
        config.set_session_factory(session_factory(SECRET))
        config.add_route("hello", "/")
        config.add_view(hello, route_name="hello")
        return config.make_wsgi_app()


def wait_for(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def session_cookie(kind, port):
    """The session cookie the load generator sends: for the app, that of the first user (the
    admin, signed in at once on registering over HTTP); for the stack, the one its view sets."""
    import requests

    session = requests.Session()
    if kind == "stack":
        session.get(f"http://127.0.0.1:{port}/", timeout=10).raise_for_status()
    else:
        url = f"http://127.0.0.1:{port}/register"
        page = session.get(url, timeout=10)
        token = re.search(r'name="csrf_token"\s+value="([^"]+)"', page.text).group(1)
        data = {"email": ADMIN[0], "password": ADMIN[1], "csrf_token": token}
        session.post(url, data=data, timeout=10, allow_redirects=False).raise_for_status()
        session.get(f"http://127.0.0.1:{port}/", timeout=10).raise_for_status()  # the welcome
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def requests_answered(port, path, cookie, seconds, clients=2):
    """Keep-alive GETs from `clients` threads for `seconds`; how many were answered. Every
    answer must be a 200."""
    counts, errors = [0] * clients, []
    stop = time.monotonic() + seconds

    def client(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Cookie": cookie} if cookie else {}
        try:
            while time.monotonic() < stop:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path} answered {response.status}")
                counts[index] += 1
        except Exception as exc:  # raised again in the calling thread
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


STATUS_SERVERS = (
    ("hello", "/"),
    ("stack", "/"),
    ("untemplated", "/admin/telemetry/untemplated"),
    ("app", "/admin/telemetry"),
)


def measure_status_rps(workdir, seconds, turn=0.5):
    """Requests per second for the plain "hello" view, the same behind the stack every page
    pays (see stack_app), the status page without its template (see untemplated_status) and
    the status page, each served by waitress in a process of its own. The load goes to each
    server in turn, `turn` seconds at a time, so a slow spell of the machine hits all alike."""
    servers = {}
    try:
        for kind, _ in STATUS_SERVERS:
            port = free_port()
            db_path = workdir / f"{kind}.fs"
            command = [sys.executable, __file__, "--serve", kind, "--db", str(db_path)]
            servers[kind] = port, subprocess.Popen([*command, "--port", str(port)])
        cookies = {}
        for kind, path in STATUS_SERVERS:
            port = servers[kind][0]
            wait_for(port)
            cookies[kind] = None if kind == "hello" else session_cookie(kind, port)
            requests_answered(port, path, cookies[kind], 1)  # warm up
        answered = dict.fromkeys(servers, 0)
        turns = max(1, round(seconds / turn))
        for _ in range(turns):
            for kind, path in STATUS_SERVERS:
                answered[kind] += requests_answered(servers[kind][0], path, cookies[kind], turn)
        return {kind: count / (turns * turn) for kind, count in answered.items()}
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(10)


# -- the parent: prepare once, run each measurement in a child -------------------------------


def measure_submit_rate(workdir, total):
    """`total` pending records sent to the real receiver, served by waitress in a process of
    its own on 127.0.0.1 (its own FileStorage)."""
    app_db, receiver_db = workdir / f"submit{total}.fs", workdir / f"receiver{total}.fs"
    run_child("--child", "fill-pending", "--db", app_db, "--total", total)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "receiver", "--db", str(receiver_db),
         "--port", str(port)]
    )
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}"
        return run_child("--child", "submit", "--db", app_db, "--url", url, "--total", total)
    finally:
        server.terminate()
        server.wait(10)


def run_child(*args):
    # Write-back of the files just made (a million records, their copies) would otherwise land
    # in the middle of the next timing: fsync-bound figures (collect, submit) suffer most.
    os.sync()
    output = subprocess.run(
        [sys.executable, __file__, *map(str, args)], capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        sys.stderr.write(output.stderr)
        raise SystemExit(f"bench: child {args[:2]} failed")
    figures = [json.loads(line) for line in output.stdout.splitlines() if line.startswith("{")]
    return {f["name"]: f for f in figures}


MEASUREMENTS = ("submit", "bytes", "collect", "view", "status", "delete")
NEED_BIG_DB = {"bytes", "collect", "view", "delete"}  # these share one filled database


def show(name, value, unit):
    print(f"{name}: {value} {unit}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 records instead of 1M")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--only", nargs="+", choices=MEASUREMENTS, metavar="NAME",
        help=f"run only these measurements: {', '.join(MEASUREMENTS)}",
    )
    # internal: one measurement in a child process
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stores", nargs="+", metavar="LABEL=PATH", help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pending", type=int, default=1_000, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        return serve(args.serve, args.db, args.port)
    if args.child:
        stores = dict(store.split("=", 1) for store in args.stores or ())
        child = {
            "collect": lambda: measure_collect(stores),
            "view": lambda: measure_view(stores),
            "list": lambda: list_records(stores),
            "delete": lambda: measure_delete_submitted(*stores.values()),
            "bytes": lambda: measure_bytes(args.db, args.total),
            "fill": lambda: fill(args.db, args.total, pending=args.pending),
            "fill-pending": lambda: fill(args.db, args.total, pending=args.total),
            "submit": lambda: measure_submit(args.db, args.url, args.total),
        }[args.child]
        child()
        emit("peak_rss_mb", round(peak_rss_mb(), 1), "MB")
        return 0

    big = 100_000 if args.quick else 1_000_000
    wanted = set(args.only or MEASUREMENTS)
    workdir = Path(tempfile.mkdtemp(prefix="fftelemetry-bench-"))
    print(
        f"# fftelemetry bench, {big:,} records for the *_1m figures, python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    try:
        if "submit" in wanted:
            submitted = measure_submit_rate(workdir, 100_000)
            show(**submitted["submit_records_per_s"])
            show("submit_peak_rss_mb", submitted["peak_rss_mb"]["value"], "MB")
            small = measure_submit_rate(workdir, 10_000)
            show("submit_peak_rss_mb_10k", small["peak_rss_mb"]["value"], "MB")

        small_db, big_db = workdir / "small.fs", workdir / "big.fs"
        if wanted & NEED_BIG_DB:
            started = time.perf_counter()
            run_child("--child", "fill", "--db", small_db, "--total", 1_000)
            fill_figures = run_child("--child", "fill", "--db", big_db, "--total", big)
            show("fill_s", round(time.perf_counter() - started, 1), "s")
            show("fill_peak_rss_mb", fill_figures["peak_rss_mb"]["value"], "MB")
        if "bytes" in wanted:
            figures = run_child("--child", "bytes", "--db", big_db, "--total", big)
            show(**figures["bytes_per_record"])

        def on_copies(sources, *child_args):
            """Run a child on copies of the given stores ({label: path}), removed afterwards."""
            stores = []
            for label, source in sources.items():
                copy = workdir / f"copy-{label}.fs"
                shutil.copyfile(source, copy)
                if Path(f"{source}.index").exists():
                    shutil.copyfile(f"{source}.index", f"{copy}.index")
                stores.append(f"{label}={copy}")
            try:
                return run_child(*child_args, "--stores", *stores)
            finally:
                for leftover in workdir.glob("copy-*.fs*"):
                    leftover.unlink()

        if "collect" in wanted:
            figures = on_copies({"1k": small_db, "1m": big_db}, "--child", "collect")
            low, high = figures["collect_us_at_1k"], figures["collect_us_at_1m"]
            show(**low)
            show(**high)
            show("collect_flatness", round(high["value"] / low["value"], 2), "ratio")

        if "view" in wanted:
            # Both stores give the two pages the same rows to show, 100 pending and 100
            # submitted: at a million the first page is pending and the deep one submitted;
            # at 100, both pages show the same 100 records, half of them submitted.
            view_small = workdir / "view100.fs"
            run_child("--child", "fill", "--db", view_small, "--total", 100, "--pending", 50)
            figures = on_copies({"100": view_small, "1m": big_db}, "--child", "view")
            low, high = figures["view_ms_at_100"], figures["view_ms_at_1m"]
            show(**low)
            show(**high)
            show("view_flatness", round(high["value"] / low["value"], 2), "ratio")
            for label, source in (("100", view_small), ("1m", big_db)):
                listed = on_copies({label: source}, "--child", "list")
                show(f"view_peak_rss_mb_at_{label}", listed["peak_rss_mb"]["value"], "MB")

        if "status" in wanted:
            rps = measure_status_rps(workdir, seconds=2 if args.quick else 5)
            show("hello_rps", round(rps["hello"]), "req/s")
            show("stack_rps", round(rps["stack"]), "req/s")
            show("untemplated_rps", round(rps["untemplated"]), "req/s")
            show("status_rps", round(rps["app"]), "req/s")
            show("stack_vs_hello", round(rps["stack"] / rps["hello"], 2), "ratio")
            show("untemplated_vs_hello", round(rps["untemplated"] / rps["hello"], 2), "ratio")
            show("status_vs_stack", round(rps["app"] / rps["stack"], 2), "ratio")
            show("status_vs_hello", round(rps["app"] / rps["hello"], 2), "ratio")

        if "delete" in wanted:
            deleted = on_copies({"1m": big_db}, "--child", "delete")
            show(**deleted["delete_submitted_s_1m"])
            show(**deleted["delete_submitted_records"])
            show("delete_peak_rss_mb", deleted["peak_rss_mb"]["value"], "MB")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
