"""Chameleon page templates, compiled one at a time, and pages inside the layout.

Chameleon compiles a template to Python the first time it is rendered or used as a macro, and
again once its file has changed when templates reload (`pyramid.reload_templates`, for
development). Under waitress several threads can do that at once, and CPython 3.11's `ast` is not
safe for it ("SystemError: AST constructor recursion depth mismatch", seen with concurrent first
requests). So every compile holds one lock: Chameleon's check for one (`cook_check`, where each
starts) takes it unless the template is compiled and does not reload. Renders of compiled
templates run freely. Locking a template's first render instead missed a template it loads only
on a later render: the status page's table of submissions, loaded once there is one.

A page's renderer is named `templates/NAME.page`: NAME.pt holds the page's content only. It is
rendered first, then layout.pt, given the page's HTML as `page_content` to write where the
content goes, and the view's `page_title`; both get `home`, the application's URL with a slash.
Every use of a macro (and every filled slot) makes Chameleon copy the variable scope, ~30 names
one at a time through Python: a page that used the layout as its macro and filled its slot made
two copies, the layout using the page as its macro one (~4% of the status page's instructions),
two renders none (~2.5% less again).
"""

import threading

from pyramid.decorator import reify
from pyramid_chameleon.renderer import template_renderer_factory
from pyramid_chameleon.zpt import PyramidPageTemplateFile, ZPTTemplateRenderer

_compiling = threading.RLock()

LAYOUT = "fftelemetry:templates/layout.pt"


class SerialisedPageTemplateFile(PyramidPageTemplateFile):
    """pyramid_chameleon's template, compiling under the lock. A template it loads (`load:`) is
    of its class too: Chameleon binds a template's loader to the template's class."""

    def cook_check(self):
        if self._cooked and not self.auto_reload:
            return False
        with _compiling:
            return super().cook_check()


class SerialisedTemplateRenderer(ZPTTemplateRenderer):
    @reify  # as pyramid_chameleon's, with the template class above
    def template(self):
        return SerialisedPageTemplateFile(
            self.path,
            auto_reload=self.lookup.auto_reload,
            debug=self.lookup.debug,
            translate=self.lookup.translate,
            macro=self.macro,
        )


def renderer_factory(info):
    """pyramid_chameleon's renderer factory (a renderer per template and registry), its renderers
    SerialisedTemplateRenderer."""
    return template_renderer_factory(info, SerialisedTemplateRenderer)


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
            system["home"] = system["request"].application_url + "/"
            system["page_content"] = page(value, system)
            return layout(value, system)

        render = page.in_layout = in_layout
    return render


def includeme(config):
    # Instead of config.include("pyramid_chameleon"), which registers the plain factory.
    config.add_renderer(".pt", renderer_factory)
    config.add_renderer(".page", page_in_layout)
