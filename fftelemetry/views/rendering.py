"""Chameleon page templates, with their compiling serialised, and pages inside the layout.

Chameleon compiles a template to Python on its first render. Under waitress several threads can
do that at once, and CPython 3.11's `ast` is not safe for it ("SystemError: AST constructor
recursion depth mismatch", seen with concurrent first requests). So each template's first render
(which also compiles the macros it loads) holds one lock; later renders run freely, unless
templates reload when their files change (`pyramid.reload_templates`, for development), when
any render may compile.

Which templates have been rendered is kept per template, not per call of the factory: Pyramid
clones a view's renderer for every request, which calls the factory anew each time.

A page's renderer is named `templates/NAME.page`: NAME.pt holds the page's content only, and
layout.pt is what is rendered, given the page's template as `page_template`, which it uses as a
macro where the content goes, and the view's `page_title`. A page that used the layout as its
macro and filled the layout's slot made Chameleon copy its variable scope twice, a name at a
time through Python; this way once (~5% of the status page's instructions).
"""

import threading
import weakref

from pyramid_chameleon.zpt import renderer_factory

_compiling = threading.Lock()
_rendered = weakref.WeakSet()  # pyramid_chameleon's renderers, one per template and registry

LAYOUT = "fftelemetry:templates/layout.pt"


def serialised(render, template):
    """`render`, holding the lock until `template` (pyramid_chameleon's renderer) has been
    rendered once."""

    def first_render_serialised(value, system):
        if template in _rendered and not template.lookup.auto_reload:
            return render(value, system)
        with _compiling:
            result = render(value, system)
        _rendered.add(template)
        return result

    return first_render_serialised


def serialised_first_render(info):
    renderer = renderer_factory(info)  # the same object for every call with this template
    return serialised(renderer, renderer)


def page_in_layout(info):
    page = renderer_factory(info.clone(name=info.name.removesuffix(".page") + ".pt"))
    # Made once per page renderer, not for each request's call, and kept on it: it refers to the
    # renderer, so a WeakKeyDictionary keyed by the renderer kept both for good, and with
    # `pyramid.reload_assets` (pyramid_chameleon then makes renderers anew for every request)
    # every request's, some 4 KB each.
    render = getattr(page, "in_layout", None)
    if render is None:
        layout = renderer_factory(info.clone(name=LAYOUT))

        def in_layout(value, system):
            system["page_template"] = page.template
            return layout(value, system)

        # a page's first render compiles the layout, or the page
        render = page.in_layout = serialised(in_layout, page)
    return render


def includeme(config):
    # Instead of config.include("pyramid_chameleon"), which registers the plain factory.
    config.add_renderer(".pt", serialised_first_render)
    config.add_renderer(".page", page_in_layout)
