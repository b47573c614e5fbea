"""fftelemetry: a Pyramid/ZODB application with transparent, opt-in usage telemetry."""

from importlib.metadata import PackageNotFoundError, version

from pyramid.config import Configurator

from . import settings as app_settings
from .library_logs import quiet_lost_servers
from .opening import open_database, require_database
from .request import use_app_request
from .resources import GENERATIONS, root_factory
from .shown import shown
from .shutdown import close_on_exit

try:
    __version__ = version("fftelemetry")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"


def main(global_config, **settings):
    """The WSGI application; refuses to start, in one line, on a setting it does not accept."""
    try:
        resolved = app_settings.load(settings, global_config)
        settings[app_settings.RETRY_ATTEMPTS] = app_settings.retry_attempts(settings, default=10)
    except app_settings.SettingsError as exc:  # it may name a file the ini names
        raise SystemExit(f"fftelemetry: {shown(exc)}") from None
    if resolved.database_uri is not None:  # ZODBCONN_URI, before pyramid_zodbconn reads it
        settings["zodbconn.uri"] = resolved.database_uri
    require_database(settings, "fftelemetry", app_settings.DATABASE_VARIABLE)
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    settings.setdefault("tm.annotate_user", "false")
    quiet_lost_servers()
    with Configurator(settings=settings, root_factory=root_factory) as config:
        config.registry.app_settings = resolved
        config.include("pyramid_retry")
        config.include(".retries")
        config.include("pyramid_tm")
        use_app_request(config)  # here, at the top level: see fftelemetry/request.py
        open_database(
            config, global_config, GENERATIONS, "fftelemetry", resolved.database_set_in
        )
        close_on_exit(config.registry)
        config.include(".security")
        config.include(".throttle")
        config.include(".telemetry")
        config.include(".views")
        config.scan(".views")
    return config.make_wsgi_app()
