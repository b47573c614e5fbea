"""Benchmarks: prints one `name: value unit` line per figure, every ratio from the same run.

    .venv/bin/python scripts/bench.py [--quick] [--only NAME ...]

Each measurement runs in a child process of its own (so `peak_rss_mb` is that measurement's
peak), on a copy of a database prepared once per run. --quick uses 100,000 records where the full
run uses 1,000,000 (names keep their `_1m` suffix; the header line says what was used).
"""

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import socket
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
    from fftelemetry.resources import appmaker

    db = open_db(path)
    for start in range(0, total, chunk):
        with db.transaction() as conn:
            store = appmaker(conn.root())["admin"]["telemetry"].store
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
        "fftelemetry.env_file": str(Path(path).parent / "no.env"),
    }
    settings.update(extra)
    return main({"here": str(Path(path).parent)}, **settings)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


# -- measurements (each runs in a child) ----------------------------------------------------


def measure_collect(path, label, rounds=300):
    """Mean cost of one collected feature record, through the app, one commit each."""
    from fftelemetry.scripting import close_databases, request_environment

    app = app_for(path)
    base = 5_000_000  # values no fill used
    for i in range(20):  # warm the connection cache
        with request_environment(app.registry) as env:
            env["request"].telemetry.collect("system.users.count", base - i - 1)
    started = time.perf_counter()
    for i in range(rounds):
        with request_environment(app.registry) as env:
            record = env["request"].telemetry.collect("system.users.count", base + i)
            assert record is not None
    elapsed = time.perf_counter() - started
    close_databases(app.registry)
    emit(f"collect_us_at_{label}", round(elapsed / rounds * 1e6, 1), "us")


def signed_in_testapp(app):
    import webtest

    testapp = webtest.TestApp(app)
    form = testapp.get("/register").forms["register"]
    form["email"], form["password"] = ADMIN
    form.submit(status=303)  # the first account is the admin, signed in at once
    return testapp


def measure_view(path, label, rounds=30):
    """The records page served by the WSGI app: first page and one deep in the middle."""
    from fftelemetry.resources import appmaker
    from fftelemetry.resources.store import new_sequence
    from fftelemetry.scripting import close_databases

    db = open_db(path)
    with db.transaction() as conn:
        total = appmaker(conn.root())["admin"]["telemetry"].store.counts()["all"]
    db.close()
    # halfway down: fill() collected record i at T0 + i microseconds
    middle = new_sequence(T0 + timedelta(microseconds=total // 2))
    app = app_for(path)
    testapp = signed_in_testapp(app)
    urls = ["/admin/telemetry/view", f"/admin/telemetry/view?before={middle}"]
    for url in urls:
        assert testapp.get(url).status_int == 200
    timings = []
    for url in urls:
        started = time.perf_counter()
        for _ in range(rounds):
            testapp.get(url)
        timings.append((time.perf_counter() - started) / rounds * 1000)
    close_databases(app.registry)
    emit(f"view_ms_at_{label}", round(sum(timings) / len(timings), 2), "ms")


def measure_delete_submitted(path):
    from fftelemetry.resources import appmaker

    db = open_db(path)
    started = time.perf_counter()
    with db.transaction() as conn:
        store = appmaker(conn.root())["admin"]["telemetry"].store
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
    import waitress

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
    else:
        app = app_for(path)
    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True)


def wait_for(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def login_cookie(port):
    """Register the first user (the admin, signed in at once) over HTTP; its session cookie."""
    import requests

    session = requests.Session()
    url = f"http://127.0.0.1:{port}/register"
    page = session.get(url, timeout=10)
    token = re.search(r'name="csrf_token"\s+value="([^"]+)"', page.text).group(1)
    data = {"email": ADMIN[0], "password": ADMIN[1], "csrf_token": token}
    session.post(url, data=data, timeout=10, allow_redirects=False).raise_for_status()
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def requests_per_second(port, path, cookie, seconds, clients=2):
    """Keep-alive GETs from `clients` threads for `seconds`; every answer must be 200."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Cookie": cookie} if cookie else {}
        while time.monotonic() < stop:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            counts[index] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def measure_status_rps(workdir, seconds):
    figures = {}
    for kind, path in (("hello", "/"), ("app", "/admin/telemetry")):
        port = free_port()
        db_path = workdir / "status.fs"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--db", str(db_path), "--port", str(port)]
        )
        try:
            wait_for(port)
            cookie = login_cookie(port) if kind == "app" else None
            requests_per_second(port, path, cookie, 1)  # warm up
            figures[kind] = requests_per_second(port, path, cookie, seconds)
        finally:
            server.terminate()
            server.wait(10)
    return figures


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


def show(name, value, unit):
    print(f"{name}: {value} {unit}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 records instead of 1M")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    # internal: one measurement in a child process
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        return serve(args.serve, args.db, args.port)
    if args.child:
        child = {
            "collect": lambda: measure_collect(args.db, args.label),
            "view": lambda: measure_view(args.db, args.label),
            "delete": lambda: measure_delete_submitted(args.db),
            "bytes": lambda: measure_bytes(args.db, args.total),
            "fill": lambda: fill(args.db, args.total, pending=1_000),
            "fill-pending": lambda: fill(args.db, args.total, pending=args.total),
            "submit": lambda: measure_submit(args.db, args.url, args.total),
        }[args.child]
        child()
        emit("peak_rss_mb", round(peak_rss_mb(), 1), "MB")
        return 0

    big = 100_000 if args.quick else 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="fftelemetry-bench-"))
    print(
        f"# fftelemetry bench, {big:,} records for the *_1m figures, python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    try:
        submitted = measure_submit_rate(workdir, 100_000)
        show(**submitted["submit_records_per_s"])
        show("submit_peak_rss_mb", submitted["peak_rss_mb"]["value"], "MB")
        small = measure_submit_rate(workdir, 10_000)
        show("submit_peak_rss_mb_10k", small["peak_rss_mb"]["value"], "MB")

        small_db, big_db = workdir / "small.fs", workdir / "big.fs"
        started = time.perf_counter()
        run_child("--child", "fill", "--db", small_db, "--total", 1_000)
        fill_figures = run_child("--child", "fill", "--db", big_db, "--total", big)
        show("fill_s", round(time.perf_counter() - started, 1), "s")
        show("fill_peak_rss_mb", fill_figures["peak_rss_mb"]["value"], "MB")
        show(**run_child("--child", "bytes", "--db", big_db, "--total", big)["bytes_per_record"])

        def on_copy(source, *child_args):
            copy = workdir / "copy.fs"
            shutil.copyfile(source, copy)
            if Path(f"{source}.index").exists():
                shutil.copyfile(f"{source}.index", f"{copy}.index")
            try:
                return run_child(*child_args, "--db", copy)
            finally:
                for leftover in workdir.glob("copy.fs*"):
                    leftover.unlink()

        low = on_copy(small_db, "--child", "collect", "--label", "1k")["collect_us_at_1k"]
        high = on_copy(big_db, "--child", "collect", "--label", "1m")["collect_us_at_1m"]
        show(**low)
        show(**high)
        show("collect_flatness", round(high["value"] / low["value"], 2), "ratio")

        view_small = workdir / "view100.fs"
        run_child("--child", "fill", "--db", view_small, "--total", 100)
        low = on_copy(view_small, "--child", "view", "--label", "100")
        high = on_copy(big_db, "--child", "view", "--label", "1m")
        show(**low["view_ms_at_100"])
        show(**high["view_ms_at_1m"])
        show("view_peak_rss_mb_at_100", low["peak_rss_mb"]["value"], "MB")
        show("view_peak_rss_mb_at_1m", high["peak_rss_mb"]["value"], "MB")
        ratio = high["view_ms_at_1m"]["value"] / low["view_ms_at_100"]["value"]
        show("view_flatness", round(ratio, 2), "ratio")

        rps = measure_status_rps(workdir, seconds=2 if args.quick else 5)
        show("hello_rps", round(rps["hello"]), "req/s")
        show("status_rps", round(rps["app"]), "req/s")
        show("status_vs_hello", round(rps["app"] / rps["hello"], 2), "ratio")

        deleted = on_copy(big_db, "--child", "delete")
        show(**deleted["delete_submitted_s_1m"])
        show(**deleted["delete_submitted_records"])
        show("delete_peak_rss_mb", deleted["peak_rss_mb"]["value"], "MB")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
