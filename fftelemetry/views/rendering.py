"""Chameleon page templates, with their first render serialised.

Chameleon compiles a template to Python on its first render. Under waitress several threads can
do that at once, and CPython 3.11's `ast` is not safe for it ("SystemError: AST constructor
recursion depth mismatch", seen with concurrent first requests). So each template's first render
(which also compiles the macros it loads) holds one lock; later renders run freely.
"""

import threading

from pyramid_chameleon.zpt import renderer_factory

_first_render = threading.Lock()


def serialised_first_render(info):
    renderer = renderer_factory(info)
    compiled = False

    def render(value, system):
        nonlocal compiled
        if compiled:
            return renderer(value, system)
        with _first_render:
            result = renderer(value, system)
        compiled = True
        return result

    return render


def includeme(config):
    # Instead of config.include("pyramid_chameleon"), which registers the plain factory.
    config.add_renderer(".pt", serialised_first_render)
