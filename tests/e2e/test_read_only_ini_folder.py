"""An ini in a folder this user may not write to, nor its var/ (an ini in /etc, a read-only
volume): the printed cron lines append to no log, as sh would stop the command on one it cannot
open, and the overdue warnings say cron mails the output. The folder is a tmpfs mounted read-only,
for which os.access says so even to root; the database is beside it, writable."""

import os
import re
import subprocess
from contextlib import contextmanager

from tests.functional.test_cli import collected_days_ago

from .harness import tmpfs

NO_LOG = re.escape("mailed by cron: no log is kept")


@contextmanager
def read_only_folder(folder, fill):
    """`folder` a tmpfs of its own, `fill(folder)` written to it, then remounted read-only."""
    with tmpfs(folder, "size=1m,mode=0755", "the test of an ini in a read-only folder"):
        fill(folder)
        subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
        assert not os.access(folder, os.W_OK)
        yield


def test_an_ini_in_a_read_only_folder_has_cron_mail_the_output(tmp_path, write_ini, run_cli,
                                                               closed_port_url):
    # `mailed by cron: no log is kept` written as '' (or any other text) passed every test: no
    # test could make a folder unwritable to root
    def fill(folder):
        write_ini("site/app.ini", **{"fftelemetry.telemetry_url": closed_port_url})
        (folder / "var").mkdir()  # the shipped inis' log folder, read-only too

    site = tmp_path / "site"
    with read_only_folder(site, fill):
        ini = str(site / "app.ini")
        shown = run_cli("instructions", "install", ini)
        assert shown.returncode == 0, shown.stderr
        # cron mails what a line without a log prints: the daily one's and the weekly pack's
        crons = re.findall(r"^ +\d+ 4 \* \* [\d*]  (cd .*)$", shown.stdout, re.M)
        assert len(crons) == 2, shown.stdout
        assert crons[0].endswith(" cron app.ini") and crons[1].endswith(" pack app.ini"), crons

        collected_days_ago(tmp_path, 3, [1])  # pending, never sent: overdue
        check = run_cli("status", ini, "--check")
        assert check.returncode == 1, check.stderr
        assert re.fullmatch(rf"OVERDUE: .*: check fftelemetry cron's output \({NO_LOG}\)\n",
                            check.stdout), check.stdout
        text = run_cli("status", ini)
        assert text.returncode == 0, text.stderr
        assert re.search(rf"^Submissions overdue since \S+ \S+ UTC: check fftelemetry cron's "
                         rf"output \({NO_LOG}\)$", text.stdout, re.M), text.stdout
