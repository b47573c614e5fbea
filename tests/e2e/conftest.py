import pytest

from .postgresql import throwaway_cluster


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL cluster of the test module's own (tests/e2e/postgresql.py)."""
    with throwaway_cluster() as cluster:
        yield cluster
