"""The container the persistent tree is made of."""

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent


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
