"""What promoter's own small HTTP clients share (git's smart HTTP in promoter.smarthttp,
GitHub's GraphQL and REST in promoter.forge.graphql, GitLab's REST in
promoter.forge.gitlab_commits): how a connection is opened."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.client import HTTPConnection


def connect(connection: HTTPConnection) -> None:
    """Open `connection` (with TLS, its handshake) with Nagle's algorithm off, as curl and
    urllib3 (so requests, PyGithub and python-gitlab) have it. http.client writes a request's
    headers and its body in two writes: with Nagle on, across a real network the body waits
    for the server's delayed acknowledgment of the headers (up to 40 ms on Linux) on every
    request that has one: each GraphQL query and mutation, each git POST. (Loopback answers
    at once, so the benchmarks cannot show it.)"""
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
