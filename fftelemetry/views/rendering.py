"""Chameleon page templates, with their compiling serialised.

Chameleon compiles a template to Python on its first render. Under waitress several threads can
do that at once, and CPython 3.11's `ast` is not safe for it ("SystemError: AST constructor
recursion depth mismatch", seen with concurrent first requests). So each template's first render
(which also compiles the macros it loads) holds one lock; later renders run freely, unless
templates reload when their files change (`pyramid.reload_templates`, for development), when
any render may compile.

Which templates have been rendered is kept per template, not per call of the factory: Pyramid
clones a view's renderer for every request, which calls the factory anew each time.
"""

import threading
import weakref

from pyramid_chameleon.zpt import renderer_factory

_compiling = threading.Lock()
_rendered = weakref.WeakSet()  # pyramid_chameleon's renderers, one per template and registry


def serialised_first_render(info):
    renderer = renderer_factory(info)  # the same object for every call with this template

    def render(value, system):
        if renderer in _rendered and not renderer.lookup.auto_reload:
            return renderer(value, system)
        with _compiling:
            result = renderer(value, system)
        _rendered.add(renderer)
        return result

    return render


def includeme(config):
    # Instead of config.include("pyramid_chameleon"), which registers the plain factory.
    config.add_renderer(".pt", serialised_first_render)
