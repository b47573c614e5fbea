"""The persistent resource tree that traversal walks:

    Root
    └── admin                 Admin (administrators only, by ACL)
        └── telemetry         TelemetryAdmin: the status page; holds the TelemetryStore
            └── view          RecordsView: the records page and its actions (transient)

Class paths are stored in pickles: keep them stable, or write a migration.
"""

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow
from pyramid_zodbconn import get_connection

from .store import TelemetryStore

ROOT_KEY = "fftelemetry"
ADMIN_ROLE = "role:admin"


class Folder(Persistent):
    """A container whose items live in an OOBTree and whose size in a Length (Substance D)."""

    __name__ = None
    __parent__ = None

    def __init__(self):
        self.data = OOBTree()
        self._num_objects = Length()

    def add(self, name, item):
        if not isinstance(name, str) or not name or "/" in name or name.startswith("@@"):
            raise ValueError(f"{name!r} is not a valid name")
        if name in self.data:
            raise KeyError(f"{name!r} exists already")
        item.__name__ = name
        item.__parent__ = self
        self.data[name] = item
        self._num_objects.change(1)
        return item

    def __getitem__(self, name):
        return self.data[name]

    def get(self, name, default=None):
        return self.data.get(name, default)

    def __contains__(self, name):
        return name in self.data

    def __len__(self):
        return self._num_objects()


class Root(Folder):
    pass


class Admin(Folder):
    __acl__ = [(Allow, ADMIN_ROLE, ALL_PERMISSIONS), DENY_ALL]


class TelemetryAdmin(Persistent):
    """`/admin/telemetry`: the status page. Its store holds every record."""

    __name__ = None
    __parent__ = None

    def __init__(self):
        self.store = TelemetryStore()

    def __getitem__(self, name):
        if name == RecordsView.NAME:
            return RecordsView(self)
        raise KeyError(name)


class RecordsView:
    """`/admin/telemetry/view`: the records. Transient: it only gives the page a place."""

    NAME = "view"

    def __init__(self, parent):
        self.__name__ = self.NAME
        self.__parent__ = parent
        self.store = parent.store


def _ensure(folder, name, factory):
    item = folder.get(name)
    if item is None:
        item = folder.add(name, factory())
    return item


def appmaker(zodb_root):
    """The application root, creating what is missing (a new database, or one from an older
    version that lacks a newer part of the tree)."""
    root = zodb_root.get(ROOT_KEY)
    if root is None:
        root = zodb_root[ROOT_KEY] = Root()
    admin = _ensure(root, "admin", Admin)
    _ensure(admin, "telemetry", TelemetryAdmin)
    return root


def root_factory(request):
    return appmaker(get_connection(request).root())


def telemetry_store(request):
    return root_factory(request)["admin"]["telemetry"].store
