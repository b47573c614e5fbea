"""Templates compile one at a time (CPython 3.11's `ast` is not thread-safe), and a page whose
template has compiled renders without waiting for that."""

import threading

from fftelemetry.views import rendering


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
