"""Loading the application for a console command, turning every way that can fail into one line.

Not `pyramid.paster.bootstrap`: with pyramid_tm's explicit manager it reads the root outside any
transaction (see fftelemetry.scripting).
"""

import configparser
import logging
import os
import re
from contextlib import contextmanager

import plaster
from paste.deploy.loadwsgi import APP, ConfigLoader, loadcontext
from plaster.exceptions import InvalidURI
from pyramid.config import global_registries
from pyramid.interfaces import IRootFactory

from .. import main as app_factory
from ..logs import Formatter
from ..opening import NO_EVOLVE, DatabaseInUse
from ..receiver import PROGRAM as RECEIVER
from ..receiver import main as receiver_factory
from ..receiver.resources import root_factory as receivers_root
from ..scripting import close_databases
from ..settings import kind_of_file
from ..shown import LOGGED_CHARS, error_text, shown
from .errors import ConfigProblem


def load_registry(config_uri, may_write=True, receiver_too=False):
    """The registry of the ini's app; `may_write=False` for a run that changes nothing (a dry
    run): an older database is then refused, not evolved. `receiver_too`: the receiver's ini is
    taken as well, and its registry returned (for `pack`: see is_receivers)."""
    path = config_path(config_uri)
    named = shown(path or config_uri)  # as given, and may hold what a terminal acts on
    if path and not os.path.isfile(path):
        kind = what_is_there(path)
        if kind is None:
            raise ConfigProblem(f"config file {named} not found")
        raise ConfigProblem(f"{named} is {kind}, not a config file")
    try:  # one loader for all that follows: finding it scans the installed entry points
        loader = plaster.get_loader(config_uri, protocols=["wsgi"])
    except Exception as exc:
        raise ConfigProblem(f"cannot load {named}: {one_line(exc)}") from None
    made_by = factory_of(loader)
    receivers = receiver_too and made_by is receiver_factory
    if made_by not in (None, app_factory) and not receivers:
        raise ConfigProblem(not_the_app(named))
    try:
        setup_command_logging(loader)
        _quiet_zeo_unless_configured()
        # as pyramid.paster.get_app: the app the URI's #name names, else main
        app = loader.get_wsgi_app(defaults=None if may_write else {NO_EVOLVE: "true"})
    except SystemExit as exc:  # fftelemetry.main's one line (a setting refused, no ZEO, not a
        # FileStorage), escaped already: escaped again, each backslash would double
        if receivers and isinstance(exc, DatabaseInUse):
            raise ConfigProblem(held_by_the_receiver(exc.held)) from None
        line = str(exc.code).removeprefix("fftelemetry: ").removeprefix(f"{RECEIVER}: ")
        raise ConfigProblem(line) from None
    except configparser.InterpolationError as exc:
        said = interpolation_problem(exc, path)
        raise ConfigProblem(f"cannot load {named}: {said}") from None
    except Exception as exc:
        raise ConfigProblem(f"cannot load {named}: {one_line(exc)}") from None
    if receivers:  # the receiver's Router, or the one a pipeline in front of it made
        return getattr(app, "registry", None) or global_registries.last
    return app_registry(app, named)


def is_receivers(registry):
    """Whether a loaded registry is the receiver's (load_registry's `receiver_too`): it has no
    store, no settings of the app's and no telemetry of its own to collect a command's use in."""
    return registry.queryUtility(IRootFactory) is receivers_root


def held_by_the_receiver(held):
    """The line for the receiver's file:// FileStorage held by another process: the running
    receiver most often, which a command cannot share it with."""
    return (
        f"{held} is in use by another process (the receiver serving it? a file:// FileStorage "
        "allows only one): stop the receiver for the pack and start it again after, or serve "
        "its database with ZEO (zeo://) to pack it while the receiver runs; nothing was done"
    )


def interpolation_problem(exc, path):
    """What configparser's `%(name)s` substitution refused, by the name of the setting that
    holds it (read again from `path`, the ini): its own text quotes the value, from the lone `%`
    on, and a `%` is most often in a password (the receiver URL's), which a log line must not
    hold."""
    option, section, exc = holder(exc, path)
    where = f"{shown(option)} in [{shown(section)}]"
    if isinstance(exc, configparser.InterpolationSyntaxError):
        return f"{where} holds a '%' followed by neither '%' nor '(': write a '%' as '%%'"
    if isinstance(exc, configparser.InterpolationMissingOptionError):
        # not named either: in a password, that name is some of it
        return f"{where} holds a %(name)s whose name is set neither there nor in [DEFAULT]"
    return f"{where} cannot be substituted ({type(exc).__name__})"


# a `%(name)s` configparser substitutes, once each `%%` (a '%' of the value's own) is left out
SUBSTITUTED = re.compile(r"%\(([^)]*)\)s")


def holder(exc, path):
    """(option, section, error) of the setting whose own value holds what `exc` refused:
    configparser names the setting it was substituting into, `telemetry_url =
    http://alice:%(password)s@…` for a `password` that holds a lone '%'. So each setting it
    substitutes, in turn, is got on its own, from the ini read again as PasteDeploy reads it;
    the first that fails is the holder, or one it substitutes. ([DEFAULT]'s own are substituted
    first, each named there by configparser.)"""
    try:
        parser = ConfigLoader(path).parser
    except (configparser.Error, OSError, UnicodeError):
        return exc.option, exc.section, exc
    seen = set()
    while exc.option not in seen:  # a loop, which configparser refuses (InterpolationDepthError)
        seen.add(exc.option)
        try:
            raw = parser.get(exc.section, exc.option, raw=True)
        except configparser.Error:  # not this file's: a section of a file it uses
            break
        names = SUBSTITUTED.findall(raw.replace("%%", ""))
        inner = next(filter(None, (refusal(parser, exc.section, name) for name in names)), None)
        if inner is None:
            break
        exc = inner
    return exc.option, exc.section, exc


def refusal(parser, section, option):
    """The InterpolationError that getting `option` on its own raises, else None (an option set
    nowhere too: the setting that substitutes it is the one to name)."""
    try:
        parser.get(section, option)
    except configparser.InterpolationError as exc:
        return exc
    except configparser.Error:
        return None
    return None


def what_is_there(path):
    """What a path that is no regular file names, or None if nothing: /dev/null or a FIFO was
    said to be "not found"."""
    try:
        return kind_of_file(os.stat(path).st_mode)
    except OSError:
        return None


def app_registry(app, name):
    """The registry of fftelemetry's app: the app's own or, under a [pipeline:main] (a prefix
    filter in front, say), that of the Pyramid app the pipeline made, as pshell finds it. The
    receiver's ini is refused before it is made (factory_of), unless the command takes it; what
    that cannot tell (a composite in front of it) is made, without the settings and the store a
    command needs."""
    registry = getattr(app, "registry", None) or global_registries.last
    if not hasattr(registry, "app_settings"):
        if registry is not None:
            close_databases(registry)  # the receiver's FileStorage, say: closed, not rebuilt
        raise ConfigProblem(not_the_app(name))
    return registry


def not_the_app(name):
    return (
        f"{name} does not make fftelemetry's app (use = egg:fftelemetry): the commands run on "
        "the app's config, not on another app's, nor on the receiver's but for pack"
    )


def factory_of(loader):
    """The factory of the ini's app (fftelemetry's, the receiver's, another's), told from its
    sections before it is made: making another app opens that app's database, which its own
    server holds (a file:// FileStorage said "in use by another process: serve it with ZEO"),
    and evolves it. Behind a [pipeline:main] or a filter, the app at their end; None for
    anything else (a composite, an ini PasteDeploy cannot read), which is made, and
    app_registry or the error says."""
    try:
        context = loadcontext(
            APP,
            loader.pastedeploy_spec,
            name=loader.uri.fragment or "main",
            relative_to=loader.relative_to,
        )
    except Exception:
        return None
    while context.object is None:  # a pipeline or a filter: on to the app it wraps
        context = getattr(context, "app_context", None) or getattr(context, "next_context", None)
        if context is None:
            return None
    return context.object if context.protocol == "paste.app_factory" else None


# The shipped inis' [formatter_generic] line.
SHIPPED_FORMAT = "%(asctime)s %(levelname)-7s [%(name)s] %(message)s"


def setup_command_logging(loader):
    """The ini's logging sections, obeyed as they are. An ini with none at all (an operator's
    own) left Python's default, warnings only: cron's log said nothing of a run that succeeded
    ("Sent 12 records ..."). Then fftelemetry's INFO and above, and everyone else's warnings, go
    to stderr as the shipped inis write them."""
    if "loggers" in loader.get_sections():
        loader.setup_logging()  # pyramid.paster.setup_logging's fileConfig
        return
    if not logging.root.handlers:  # as basicConfig: a process that set up its own keeps it
        handler = logging.StreamHandler()
        handler.setFormatter(Formatter(SHIPPED_FORMAT))
        logging.root.addHandler(handler)
    logging.getLogger("fftelemetry").setLevel(logging.INFO)


def _quiet_zeo_unless_configured():
    """ZEO logs connecting, connected and every retry at INFO: four lines or more on every
    command, drowning the one a command has to say (and filling cron's log). Its warnings and
    errors still show, and an ini that sets a level for the ZEO logger is obeyed."""
    zeo = logging.getLogger("ZEO")
    if zeo.level == logging.NOTSET:
        zeo.setLevel(logging.WARNING)


def config_path(config_uri):
    """The file a config URI names; plaster cannot even parse a name without a known suffix
    (a folder, say), which is still worth a plain "not found" rather than a traceback."""
    try:
        return plaster.parse_uri(config_uri).path
    except InvalidURI:
        return config_uri.partition("#")[0]


def one_line(exc):
    """The error's text on one line, escaped and cut as a log line cuts it."""
    return shown(" ".join(error_text(exc).split()) or type(exc).__name__, LOGGED_CHARS)


@contextmanager
def quiet(logger_name):
    logger = logging.getLogger(logger_name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before
