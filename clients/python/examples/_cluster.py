"""Where the examples find the cluster: `cargo xtask cluster`'s nodes and
certificates by default, or RAFTSTACK_NODES / RAFTSTACK_CERTS."""

import os

from raftstack import Client


def client() -> Client:
    nodes = os.environ.get("RAFTSTACK_NODES", "127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503")
    return Client(nodes.split(","), certs=os.environ.get("RAFTSTACK_CERTS", "certs"))
