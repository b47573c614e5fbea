"""Templates compile one at a time (CPython 3.11's `ast` is not thread-safe), and a page whose
template has compiled renders without waiting for that."""

import gc
import threading

from pyramid_chameleon.zpt import ZPTTemplateRenderer

from fftelemetry.resources.store import SubmissionResult, utcnow
from fftelemetry.views import rendering
from tests.functional.conftest import USER_EMAIL


def get_while_compiling(browser, path, held=1):
    """GET `path` from another thread while the compile lock is held (for up to `held` seconds,
    less if the GET is answered), as it is while another request compiles a template; the
    statuses answered while it was held, then after."""
    during, answered = [], []
    thread = threading.Thread(target=lambda: answered.append(browser.get(path).status_int))
    with rendering._compiling:
        thread.start()
        thread.join(held)
        during.extend(answered)
    thread.join(10)
    return during, answered


def test_a_page_compiled_before_does_not_wait_for_a_compile(anonymous):
    anonymous.get("/login")
    # a generous wait: answered, it ends at once; on a busy machine a second may not be enough
    assert get_while_compiling(anonymous, "/login", held=10) == ([200], [200])


def test_a_first_render_waits_for_the_compile_in_progress(anonymous):
    assert get_while_compiling(anonymous, "/login") == ([], [200])


def test_with_templates_reloading_every_render_may_compile_so_every_render_waits(make_site):
    anonymous = make_site(**{"pyramid.reload_templates": "true"}).browser()
    anonymous.get("/login")
    assert get_while_compiling(anonymous, "/login") == ([], [200])


def test_a_page_rendered_first_after_another_page_waits_for_the_compile_in_progress(anonymous):
    """Pages are rendered inside layout.pt (fftelemetry/views/rendering.py): the layout, compiled
    for one page, does not let another page's first render, which compiles that page, skip the
    lock."""
    anonymous.get("/login")
    assert get_while_compiling(anonymous, "/register") == ([], [200])


def test_every_page_has_its_title_from_its_view(site, admin, anonymous):
    newcomer = site.register(USER_EMAIL, wizard=None)
    titles = {
        (anonymous, "/"): "Home", (anonymous, "/login"): "Log in",
        (anonymous, "/nowhere"): "Not found", (newcomer, "/welcome"): "Welcome",
        (admin, "/preferences"): "Preferences", (admin, "/admin/telemetry"): "Telemetry",
        (admin, "/admin/telemetry/view"): "Telemetry records",
        (admin, "/admin/telemetry/submissions"): "Submission log",
    }
    for (browser, path), title in titles.items():
        page = browser.get(path, expect_errors=True)
        assert page.html.title.text == f"{title} \N{EM DASH} fftelemetry", path


def test_a_template_a_page_loads_only_later_is_compiled_under_the_lock(site, admin):
    """The status page loads the submissions' table only once there is a submission: the first
    render to load it compiles it, however long after the page's first render."""
    admin.get("/admin/telemetry")  # no submission yet: the table is not loaded
    with site.store() as store:
        store.log_submission(SubmissionResult(utcnow(), 0, 503, None, "refused"))
    assert get_while_compiling(admin, "/admin/telemetry") == ([], [200])
    assert get_while_compiling(admin, "/admin/telemetry", held=10) == ([200], [200])


def live_renderers():
    gc.collect()
    return sum(isinstance(obj, ZPTTemplateRenderer) for obj in gc.get_objects())


def test_renderers_made_for_a_request_go_with_it(make_site):
    """With `pyramid.reload_assets` pyramid_chameleon makes a page's renderers anew for every
    request (the page's and the layout's): once answered, nothing keeps them."""
    anonymous = make_site(**{"pyramid.reload_assets": "true"}).browser()
    anonymous.get("/login")
    before = live_renderers()
    for _ in range(10):
        anonymous.get("/login")
        anonymous.get("/nowhere", status=404)
    assert live_renderers() == before
