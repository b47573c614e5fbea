"""Instructions per request, counted by valgrind's callgrind: figures a shared machine's load
does not move (the benchmark's requests/s move by up to 25% from one run to the next).

    .venv/bin/python scripts/instructions.py [--requests 300] [--keep DIR] [KIND ...]

KIND is one of the benchmark's status servers (see `measure_status_rps` in scripts/bench.py),
each built as the benchmark builds it, on a database of its own: hello, stack, untemplated,
status; wsgi, a bare WSGI callable, which is what this loop itself costs; and
status_10_submissions, the status page once ten weekly cron runs have been logged (the
benchmark's page has none: this one's table has ten rows). Each runs in a
Python under `valgrind --tool=callgrind`, is warmed up, then called N times in process through
WSGI (no server, no socket). Only those N calls are counted: callgrind zeroes its counts on
entering os.getppid() and dumps them on entering os.getloadavg(), called just before and after.
With --keep, each kind's counts stay in DIR/callgrind.KIND.1, for `callgrind_annotate
--inclusive=yes DIR/callgrind.status.1-01`.
"""

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import bench  # scripts/ is first on sys.path when this file runs

KINDS = ("wsgi", "hello", "stack", "untemplated", "status", "status_10_submissions")
PATHS = {
    "untemplated": "/admin/telemetry/untemplated",
    "status": "/admin/telemetry",
    "status_10_submissions": "/admin/telemetry",
}
WARM_UP = 50
SUBMISSIONS = 10


def log_weekly_submissions(app, count):
    """`count` successful submissions in the app's log, a week apart, the newest an hour ago (so
    none is due or overdue), each as the sender logs a receiver's answer: through the store's
    own log_submission. Their receiver references are uuid4s, the same in every run."""
    import random
    import uuid

    from fftelemetry.resources import telemetry_store_in
    from fftelemetry.resources.store import SubmissionResult, utcnow
    from fftelemetry.scripting import database

    newest = utcnow() - timedelta(hours=1)
    with database(app.registry).transaction() as conn:
        store = telemetry_store_in(conn.root())
        for week in reversed(range(count)):
            reference = uuid.UUID(int=random.Random(week).getrandbits(128), version=4)
            at = newest - timedelta(weeks=week)
            store.log_submission(SubmissionResult(at, 3 + week, 200, str(reference), None))


def app_and_cookie(kind, path):
    """The app the benchmark serves for `kind`, and the session cookie its load generator
    sends (the admin's, signed in on registering; the stack's, set by its first request)."""
    import webtest

    if kind == "wsgi":
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello"]

        return app, None
    if kind == "hello":
        from pyramid.config import Configurator
        from pyramid.response import Response

        with Configurator() as config:
            config.add_route("hello", "/")
            config.add_view(lambda request: Response("hello"), route_name="hello")
            return config.make_wsgi_app(), None
    if kind == "stack":
        app = bench.stack_app(path)
        testapp = webtest.TestApp(app)
        testapp.get("/")
    else:
        extra = {"pyramid.includes": "bench.untemplated_status"} if kind == "untemplated" else {}
        app = bench.app_for(path, **extra)
        testapp = bench.signed_in_testapp(app)
        if kind == "status_10_submissions":
            log_weekly_submissions(app, SUBMISSIONS)
            rows = testapp.get(PATHS[kind]).html.select("#submissions-heading + div tbody tr")
            if len(rows) != SUBMISSIONS:  # the page this figure is about
                raise SystemExit(f"{PATHS[kind]}: {len(rows)} submissions shown, not {SUBMISSIONS}")
    return app, "; ".join(f"{name}={value}" for name, value in testapp.cookies.items())


def run_requests(kind, count):
    """In the process under callgrind: warm up, then `count` requests between the markers."""
    from fftelemetry.scripting import close_databases

    with tempfile.TemporaryDirectory(prefix="fftelemetry-instructions-") as workdir:
        app, cookie = app_and_cookie(kind, Path(workdir) / f"{kind}.fs")
        try:
            count_requests(app, PATHS.get(kind, "/"), cookie, count)
        finally:
            if hasattr(app, "registry"):
                close_databases(app.registry)  # before its folder goes


def count_requests(app, path, cookie, count):
    from webob import Request

    environ = Request.blank(path, headers={"Cookie": cookie} if cookie else {}).environ
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def request():
        body = app(dict(environ), start_response)
        b"".join(body)
        if hasattr(body, "close"):
            body.close()

    for _ in range(WARM_UP):
        request()
    statuses.clear()
    gc.collect()  # collections of what start-up left would land in the loop at random
    os.getppid()  # callgrind: --zero-before
    for _ in range(count):
        request()
    os.getloadavg()  # callgrind: --dump-before
    if statuses != ["200 OK"] * count:
        raise SystemExit(f"{path}: answered {sorted(set(statuses))}")


def instructions(kind, count, outdir):
    out = outdir / f"callgrind.{kind}"
    command = [
        "valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}",
        "--zero-before=os_getppid", "--dump-before=os_getloadavg",
        "--separate-threads=yes",  # argon2 hashes the sign-up's password in threads of its own
        sys.executable, __file__, "--child", kind, "--requests", str(count),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dicts and sets in every run
    subprocess.run(command, check=True, env=env)
    counted = Path(f"{out}.1-01").read_text()  # the main thread's counts between the markers
    return int(re.search(r"^summary: (\d+)", counted, re.MULTILINE).group(1)) / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=", ".join(KINDS))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep callgrind's files here")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_requests(args.child, args.requests)
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"no such kind: {', '.join(sorted(unknown))} (one of {', '.join(KINDS)})")
    with tempfile.TemporaryDirectory() as scratch:
        outdir = args.keep or Path(scratch)
        outdir.mkdir(parents=True, exist_ok=True)
        for kind in args.kinds or KINDS:
            per_request = instructions(kind, args.requests, outdir)
            print(f"{kind}_instructions: {per_request / 1000:,.0f} k per request", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
