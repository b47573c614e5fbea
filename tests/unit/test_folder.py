"""The tree's container on a real FileStorage: a name traversal could not reach, or one taken
already, is refused and nothing is stored. (The app's own names never are: an email address
has no "/" and no "@@", and Users.create looks for a taken one first; this is what any other
code adding to a folder relies on.)"""

import pytest

from fftelemetry.resources.folder import Folder


@pytest.mark.parametrize("name", ["", "a/b", "@@view", 42])
def test_a_name_traversal_cannot_reach_is_refused(opened_root, name):
    root, tm = opened_root
    with pytest.raises(ValueError, match=r"is not a valid name$") as refused:
        root.add(name, Folder())
    assert str(refused.value) == f"{name!r} is not a valid name"
    tm.commit()
    assert list(root.data) == ["admin", "users"]
    assert len(root) == 2


def test_a_taken_name_is_refused_and_keeps_its_item(opened_root):
    root, tm = opened_root
    users = root["users"]
    with pytest.raises(KeyError) as refused:
        root.add("users", Folder())
    assert refused.value.args == ("'users' exists already",)
    tm.commit()
    assert root["users"] is users
    assert users.__parent__ is root
    assert len(root) == 2
