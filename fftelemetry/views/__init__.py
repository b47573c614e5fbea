"""Views, one module per area. `config.scan('.views')` in `main` registers them."""


def includeme(config):
    config.add_static_view("static", "fftelemetry:static", cache_max_age=3600)
