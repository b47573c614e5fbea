"""The persistent resource tree that traversal walks:

    Root
    ├── users                 Users: accounts keyed by normalised email (users.py)
    └── admin                 Admin (administrators only, by ACL)
        └── telemetry         TelemetryAdmin: the status page; holds the TelemetryStore
            ├── view          RecordsView: the records page and its actions (transient)
            └── submissions   SubmissionsView: the whole submission log (transient)

Class paths are stored in pickles: keep them stable, or write an evolve step (generations.py).
"""

from persistent import Persistent
from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow, Authenticated, Everyone
from pyramid.request import RequestLocalCache
from pyramid_zodbconn import get_connection

from .folder import Folder
from .generations import FIRST, Generations
from .store import TelemetryStore
from .users import Users

ROOT_KEY = "fftelemetry"
# The layout of this tree: its evolve steps, oldest first (see generations.py). None yet.
GENERATIONS = Generations(
    "fftelemetry", ROOT_KEY, steps=[],
    writer="start fftelemetry (or run fftelemetry status)",
)
ADMIN_ROLE = "role:admin"
# Permissions: every view needs one (the default is VIEW, see fftelemetry.security), so a view
# added without thinking about security is still covered by the ACLs below.
VIEW = "view"
ACCOUNT = "account"  # pages of one's own account: signed-in users


class Root(Folder):
    __acl__ = [(Allow, Everyone, VIEW), (Allow, Authenticated, ACCOUNT)]
    generation = FIRST  # of a root made before generations were recorded

    def __init__(self):
        super().__init__()
        self.generation = GENERATIONS.current


class Admin(Folder):
    __acl__ = [(Allow, ADMIN_ROLE, ALL_PERMISSIONS), DENY_ALL]


class TelemetryAdmin(Persistent):
    """`/admin/telemetry`: the status page. Its store holds every record."""

    __name__ = None
    __parent__ = None

    def __init__(self):
        self.store = TelemetryStore()

    def __getitem__(self, name):
        for page in (RecordsView, SubmissionsView):
            if name == page.NAME:
                return page(self)
        raise KeyError(name)


class TelemetryPage:
    """A page under the status page. Transient: it only gives the page a place. Views are for
    each subclass, never this one: one page's actions must not answer under another."""

    NAME = None

    def __init__(self, parent):
        self.__name__ = self.NAME
        self.__parent__ = parent
        self.store = parent.store


class RecordsView(TelemetryPage):
    """`/admin/telemetry/view`: the records."""

    NAME = "view"


class SubmissionsView(TelemetryPage):
    """`/admin/telemetry/submissions`: every submission the log keeps, read-only."""

    NAME = "submissions"


def _ensure(folder, name, factory):
    item = folder.get(name)
    if item is None:
        item = folder.add(name, factory())
    return item


def appmaker(zodb_root):
    """The application root, creating what is missing (a new database, or one from an older
    version that lacks a newer part of the tree). A database of another generation is refused
    before anything is written (GenerationError)."""
    root = zodb_root.get(ROOT_KEY)
    if root is None:
        root = zodb_root[ROOT_KEY] = Root()
    else:
        GENERATIONS.check(root)
    _ensure(root, "users", Users)
    admin = _ensure(root, "admin", Admin)
    _ensure(admin, "telemetry", TelemetryAdmin)
    return root


# The root is asked for by traversal, the security policy and the telemetry collector: find (or
# make) it once per request.
_roots = RequestLocalCache(lambda request: appmaker(get_connection(request).root()))


def root_factory(request):
    return _roots.get_or_create(request)


def users_folder(request):
    return root_factory(request)["users"]


def telemetry_store(request):
    return root_factory(request)["admin"]["telemetry"].store


def telemetry_store_in(zodb_root):
    """The store, from a connection of one's own (the sender, the streamed export)."""
    return appmaker(zodb_root)["admin"]["telemetry"].store
