"""The cluster under test: started by the Rust test that runs pytest
(``cargo test --test python_client``), described by the environment:

- ``RAFTSTACK_NODES``: the command ports, ``host:port,host:port,...``
- ``RAFTSTACK_CERTS``: the certificates directory
- ``RAFTSTACK_FOLLOWER_PID``: a follower's process id, for the failover test
"""

import os

import pytest

from raftstack import Client


def _nodes():
    nodes = os.environ.get("RAFTSTACK_NODES")
    if not nodes:
        pytest.skip("no cluster: run through `cargo test --test python_client`")
    return nodes.split(",")


@pytest.fixture(scope="session")
def nodes():
    return _nodes()


@pytest.fixture(scope="session")
def certs():
    return os.environ["RAFTSTACK_CERTS"]


@pytest.fixture
def client(nodes, certs):
    with Client(nodes, certs) as c:
        yield c
