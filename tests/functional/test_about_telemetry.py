"""/telemetry tells the people telemetry is about, with no login; the forms that collect say
what they record while it is on; every page links to it."""

import pytest

from fftelemetry import catalog
from tests.functional.conftest import ADMIN_EMAIL

ABOUT = "/telemetry"
ON = {"fftelemetry.send_telemetry": "true"}
OFF = {"fftelemetry.send_telemetry": "false"}
# A receiver with an internal host name and a password in it: not for anonymous eyes.
SECRET_RECEIVER = "https://collector:hunter22@telemetry.corp.internal:8443/in"


def words(element):
    """An element's text as a reader sees it: the template's line breaks are spaces."""
    return " ".join(element.get_text(" ").split())


def switch_text(page):
    return words(page.html.select_one("#switch"))


def on_and_off(make_site, tmp_path):
    """Two sites, telemetry on and off, each on a database of its own."""
    return [make_site(**switch, **{"zodbconn.uri": f"file://{tmp_path}/{name}.fs"})
            for name, switch in (("on", ON), ("off", OFF))]


def notice(page):
    """The telemetry notice of the page's form, as (text, its link), or None."""
    note = page.html.select_one("form #telemetry-notice")
    if note is None:
        return None
    return words(note), note.a["href"]


def test_anyone_can_read_whether_telemetry_is_on(make_site):
    page = make_site(**ON).browser().get(ABOUT, status=200)
    assert page.html.title.text == "About telemetry — fftelemetry"
    assert switch_text(page).startswith("Telemetry is enabled on this installation")
    text = words(page.html.main)
    assert "Never any financial data, no amounts, sums or balances" in text
    assert "No record carries a user's name or email address" in text
    assert "can see every record, before and after it is sent, and delete them" in text


def test_anyone_can_read_that_telemetry_is_off_and_nothing_is_collected(make_site):
    page = make_site(**OFF).browser().get(ABOUT, status=200)
    assert switch_text(page).startswith(
        "Telemetry is disabled on this installation. Nothing is collected and nothing is sent."
    )
    assert page.html.select("table.catalog") == []
    assert "system.users.count" not in page.text


def test_while_on_it_lists_every_catalog_key_and_when_it_is_collected(make_site):
    page = make_site(**ON).browser().get(ABOUT)
    rows = [
        [words(cell) for cell in row.find_all("td")]
        for row in page.html.select("table.catalog tbody tr")
    ]
    assert rows == [[e.key, e.collected_when, e.description] for e in catalog.ENTRIES]
    # the table's box is named by the heading above it (catalog_table.pt)
    box = page.html.select_one(".scroll[role=region]")
    assert page.html.find(id=box["aria-labelledby"]).text == "What is collected, and when"


@pytest.mark.parametrize("days, every", [("3", "every 3 days"), ("1", "every day")])
def test_it_says_how_often_records_are_sent(make_site, days, every):
    page = make_site(**ON, **{"fftelemetry.interval_days": days}).browser().get(ABOUT)
    text = words(page.html.main)
    assert f"are sent {every}; the administrator can also send them sooner" in text


def test_it_says_a_delete_does_not_reach_the_receiver(make_site):
    # "the administrator can ... delete them" read as if what was sent could be taken back
    page = make_site(**ON).browser().get(ABOUT)
    assert words(page.html.select_one("#sent-stays-sent")) == (
        "A delete here does not reach the receiver: what was sent stays with whoever runs it."
    )


def test_it_says_how_long_sent_records_stay(make_site, tmp_path):
    kept = make_site(**ON).browser().get(ABOUT)
    assert "A record that was sent stays on this installation for 90 days, then it is deleted." \
        in words(kept.html.main)
    for_ever = make_site(**ON, **{"fftelemetry.keep_submitted_days": "0",
                                  "zodbconn.uri": f"file://{tmp_path}/other.fs"})
    assert "stays on this installation" not in for_ever.browser().get(ABOUT).text


def test_it_shows_no_receiver_no_installation_id_and_no_records(make_site):
    site = make_site(**ON, **{"fftelemetry.telemetry_url": SECRET_RECEIVER})
    admin = site.register(ADMIN_EMAIL, wizard=("nl", "nl_BE"))
    with site.store() as store:
        installation_id = store.installation_id
        values = [str(record.value) for _, record in store.page(size=100)]
    assert installation_id and "nl_BE" in values  # there is something to give away
    status = admin.get("/admin/telemetry").text
    assert installation_id in status and "telemetry.corp.internal" in status
    for browser in (site.browser(), admin):  # nor to the administrator, who has the admin pages
        text = browser.get(ABOUT).text
        assert installation_id not in text
        for secret in (SECRET_RECEIVER, "telemetry.corp.internal", "hunter22", "collector:"):
            assert secret not in text
        assert "nl_BE" not in text and "pending" not in text


def test_the_administrator_is_pointed_to_the_status_page(site, admin, member):
    assert site.browser().get(ABOUT).html.select("#admin-link") == []
    assert member.get(ABOUT).html.select("#admin-link") == []
    link = admin.get(ABOUT).html.select_one("#admin-link a")
    assert link["href"] == "http://localhost/admin/telemetry"


def test_each_section_has_its_heading_inside(make_site):
    page = make_site(**ON).browser().get(ABOUT)
    sections = page.html.select("main section")
    assert sections and [section.find().name for section in sections] == ["h2"] * len(sections)


def test_the_forms_that_collect_say_so_only_while_telemetry_is_on(make_site, tmp_path):
    seen = {}
    for name, site in zip(("on", "off"), on_and_off(make_site, tmp_path), strict=True):
        browser = site.browser()
        register = browser.get("/register")
        form = register.forms["register"]
        form["email"], form["password"] = ADMIN_EMAIL, "correct horse battery"
        welcome = form.submit(status=303).follow()
        seen[name] = [notice(register), notice(welcome)]
        welcome.forms["preferences"].submit(status=303)
        seen[name].append(notice(browser.get("/preferences")))
    assert seen["off"] == [None, None, None]
    register, welcome, preferences = seen["on"]
    # in the catalog's words: system.users.count, then the three keys the wizard collects
    assert register == (
        "When you register, telemetry records how many users this installation has: the number, "
        "not your email address. About telemetry",
        "http://localhost/telemetry",
    )
    assert welcome == (
        "When you finish, telemetry records the language and locale you choose and this "
        "installation's default language, not who chose them. About telemetry",
        "http://localhost/telemetry",
    )
    assert preferences == (welcome[0].replace("finish", "save"), "http://localhost/telemetry")


def test_the_notice_is_what_screen_readers_hear_with_the_button(make_site, tmp_path):
    on, off = on_and_off(make_site, tmp_path)
    page = on.browser().get("/register")
    assert page.html.select_one("#register button")["aria-describedby"] == "telemetry-notice"
    page = off.browser().get("/register")
    assert not page.html.select_one("#register button").has_attr("aria-describedby")


def test_every_page_links_to_it(site, admin, member):
    anonymous = site.browser()
    pages = [
        (anonymous, "/", 200), (anonymous, "/login", 200), (anonymous, "/register", 200),
        (anonymous, ABOUT, 200), (anonymous, "/nothing", 404), (member, "/preferences", 200),
        (member, "/admin/telemetry", 403), (admin, "/admin/telemetry", 200),
        (admin, "/admin/telemetry/view", 200), (admin, "/admin/telemetry/submissions", 200),
    ]
    for browser, path, status in pages:
        links = browser.get(path, status=status).html.select("body > footer a")
        assert [(a.text, a["href"]) for a in links] == [
            ("About telemetry", "http://localhost/telemetry")
        ], path



def test_on_this_page_the_footer_link_is_marked_as_the_current_page(site, admin):
    for browser in (site.browser(), admin):
        [link] = browser.get(ABOUT).html.select("[aria-current]")
        assert (link.text, link.parent.parent.name, link["aria-current"]) == (
            "About telemetry", "footer", "page"
        )
    assert site.browser().get("/").html.select("[aria-current]") == []
