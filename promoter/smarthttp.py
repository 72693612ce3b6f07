"""git's smart HTTP protocol, spoken directly for the few requests promoter makes most.

`git fetch` and `git push` each start with a GET of the ref advertisement and run two or
three processes; promoter knows what it wants, so it sends its protocol v2 `ls-refs` and
`fetch` requests to git-upload-pack, and its one-ref push to git-receive-pack, itself, over
kept-alive connections shared by every scratch repo of the run. This module only speaks HTTP
and pkt-lines: git still builds and indexes every pack (promoter.gitrepo, the one place git
runs, decides when a direct request may be made and falls back to git on anything
unexpected: an answer here is None then, never a guess).
"""

from __future__ import annotations

import base64
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from http.client import HTTPConnection

    from promoter.gitrepo import Remote

_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Idle kept-alive connections per server, shared by every scratch repo of this run.
_CONNECTIONS: dict[str, list[HTTPConnection]] = {}
_POOL_LOCK = threading.Lock()


# ---------------------------------------------------------------- pkt-lines, upload-pack v2


def pkt(text: str) -> bytes:
    data = text.encode()
    return b"%04x" % (len(data) + 4) + data


def fetch_request(
    oids: list[str],
    shallow: bool = False,
    haves: Iterable[str] = (),
    boundary: Iterable[str] = (),
    since: int | None = None,
) -> bytes:
    """A v2 `fetch` of `oids` with nothing to negotiate (`done` at once); `shallow`: the
    commits alone with their trees, as `--depth=1 --filter=blob:none` asks. `haves`: commits
    the repo holds (the server leaves out what they reach), `boundary` its shallow commits
    (where what the haves reach ends here), sent as `git fetch` sends them: without `done`
    (upload-pack skips the haves of a request that says `done`), so the server answers
    `ready` and the pack in one round when it knows a have, and only acknowledgments when
    not; and as a `thin-pack` (`index-pack --fix-thin` completes it from the objects here),
    the only kind for which upload-pack leaves out what a shallow client's haves reach.

    `since` (with `shallow` and a have: the have's committer time) cuts the history at
    commits older than that (`--shallow-since`) instead of at depth 1: the commits between
    the have and the tip, side branches cut at the same time, so the boundary meets the have.
    With depth 1 the tip is cut from its parents, the have is no longer below it, and
    upload-pack's `pack-objects --shallow` marks every tree of the have as sent: 35 ms of
    server CPU at 20,000 files, 8 ms this way. A tip older than `since` (a branch moved
    back) is refused with no pack: the caller then fetches the tip alone."""
    deepen = f"deepen-since {since}\n" if since is not None else "deepen 1\n"
    options = [deepen, "filter blob:none\n"] if shallow else []
    haves = list(haves)
    thin = [pkt("thin-pack\n")] if haves else []
    return b"".join(
        [pkt("command=fetch\n"), b"0001", *thin, pkt("no-progress\n"), pkt("ofs-delta\n"),
         *(pkt(f"shallow {oid}\n") for oid in boundary),
         *(pkt(line) for line in options), *(pkt(f"want {oid}\n") for oid in oids),
         *(pkt(f"have {oid}\n") for oid in haves),
         *([] if haves else [pkt("done\n")]), b"0000"]
    )  # fmt: skip


def ls_refs_request(ref: str) -> bytes:
    return b"".join([pkt("command=ls-refs\n"), b"0001", pkt(f"ref-prefix {ref}\n"), b"0000"])


def listed_refs(answer: bytes) -> dict[str, str] | None:
    """name → id of an `ls-refs` answer (`<oid> <name>[ attributes]` lines, then a flush),
    or None when it is not one."""
    refs: dict[str, str] = {}
    for line in pkt_lines(answer):
        if line is None:
            return refs
        oid, _, rest = line.decode(errors="replace").rstrip("\n").partition(" ")
        if not _SHA_RE.match(oid) or not rest:
            return None
        refs[rest.split(" ", 1)[0]] = oid
    return None


def pkt_lines(answer: bytes) -> Iterator[bytes | None]:
    """The packets of an answer: their data, None for a flush, delimiter or end packet. Ends
    at the first length that is not 4 hex digits or runs past the answer (an error page, a cut
    answer): every reader then finds its answer incomplete, and says it has none."""
    pos = 0
    while pos + 4 <= len(answer):
        length = answer[pos : pos + 4]
        if not all(c in b"0123456789abcdefABCDEF" for c in length):
            return
        size = int(length, 16)
        if size < 4:
            if size > 2:  # 0003 is no packet at all
                return
            pos += 4
            yield None
            continue
        if pos + size > len(answer):
            return
        yield answer[pos + 4 : pos + size]
        pos += size


def fetch_answer(answer: bytes) -> tuple[list[str], list[str], bytes] | None:
    """(shallow ids, unshallow ids, pack) of a v2 `fetch` answer: its optional
    `acknowledgments` (which must say `ready`) and `shallow-info` sections, then `packfile`
    (side band 1). None for anything else (an `ERR`, an error on band 3, a section promoter
    did not ask for, acknowledgments without `ready`, no pack)."""
    shallow: list[str] = []
    unshallow: list[str] = []
    pack: list[bytes] = []
    section = ""
    ready: bool | None = None  # None: no acknowledgments section (a request that said `done`)
    for data in pkt_lines(answer):
        if data is None:
            if section == "packfile":
                break
            section = ""
            continue
        if not section:
            section = data.rstrip(b"\n").decode(errors="replace")
            if section not in ("acknowledgments", "shallow-info", "packfile"):
                return None
            if section == "acknowledgments":
                ready = False
        elif section == "acknowledgments":
            ack = data.decode(errors="replace").strip()
            if ack == "ready":
                ready = True
            elif ack != "NAK" and not (ack.startswith("ACK ") and _SHA_RE.match(ack[4:])):
                return None
        elif section == "shallow-info":
            kind, _, oid = data.decode(errors="replace").strip().partition(" ")
            if kind not in ("shallow", "unshallow") or not _SHA_RE.match(oid):
                return None
            (shallow if kind == "shallow" else unshallow).append(oid)
        elif data[:1] == b"\x01":
            pack.append(data[1:])
        elif data[:1] == b"\x03":  # the server's fatal error
            return None
    if section != "packfile" or not pack or ready is False:
        return None
    return shallow, unshallow, b"".join(pack)


def upload_pack(remote: Remote, body: bytes, limit: int | None = None) -> bytes | None:
    """POST a protocol v2 request to the remote's git-upload-pack; the answer, or None when
    it is not one (another status or content type: a redirect, an error page) or is longer
    than `limit` bytes (the connection is then closed, not read to its end)."""
    response = _request(remote, "POST", "/git-upload-pack", body, {
        "Content-Type": "application/x-git-upload-pack-request",
        "Accept": "application/x-git-upload-pack-result",
        "Git-Protocol": "version=2",
    }, retry=True, limit=limit)  # fmt: skip
    return _answer(response, "application/x-git-upload-pack-result")


# ---------------------------------------------------------------- receive-pack (push)


class Advertisement(NamedTuple):
    """git-receive-pack's ref advertisement: where each ref is, and what the server can do."""

    refs: dict[str, str]
    capabilities: frozenset[str]


def receive_pack_refs(remote: Remote) -> Advertisement | None:
    """GET the remote's receive-pack ref advertisement (what `git push` asks for first: the
    authentication check, and where the branch is now); None when the answer is not one."""
    response = _request(remote, "GET", "/info/refs?service=git-receive-pack", None, {
        "Accept": "application/x-git-receive-pack-advertisement, */*",
    }, retry=True)  # fmt: skip
    answer = _answer(response, "application/x-git-receive-pack-advertisement")
    if answer is None:
        return None
    refs: dict[str, str] = {}
    capabilities: frozenset[str] | None = None
    for data in pkt_lines(answer):
        if data is None:
            if refs or capabilities is not None:
                return Advertisement(refs, capabilities or frozenset())
            continue  # the flush after `# service=git-receive-pack`
        text = data.decode(errors="replace").rstrip("\n")
        if text.startswith("# service="):
            continue
        text, nul, caps = text.partition("\0")
        if nul and capabilities is None:
            capabilities = frozenset(caps.split())
        oid, _, name = text.partition(" ")
        if not _SHA_RE.match(oid) or not name:
            return None
        if name != "capabilities^{}":  # what an empty repository advertises
            refs[name] = oid
    return None


def push_request(old: str, new: str, ref: str, capabilities: Iterable[str], pack: bytes) -> bytes:
    """The body of a one-ref push: the command (`old` must still be where `ref` is, else
    the server refuses to move it: a compare-and-swap), then the pack."""
    command = f"{old} {new} {ref}\0{' '.join(capabilities)}"
    return pkt(command) + b"0000" + pack


def receive_pack(remote: Remote, body: bytes) -> bytes | None:
    """POST a push to the remote's git-receive-pack; the answer, or None when there is none
    or it is not one. Never sent twice: a push whose answer was lost may have landed, and
    only a look at the ref can tell (the caller's fallback, `git push`, looks)."""
    import http.client

    try:
        response = _request(remote, "POST", "/git-receive-pack", body, {
            "Content-Type": "application/x-git-receive-pack-request",
            "Accept": "application/x-git-receive-pack-result",
        }, retry=False)  # fmt: skip
    except (OSError, http.client.HTTPException):
        return None
    return _answer(response, "application/x-git-receive-pack-result")


class Report(NamedTuple):
    """What receive-pack said about one ref: `ok` (it moved), `ng` (refused, `reason` saying
    why), or `failed` (the pack was not unpacked, or the server stopped with a fatal error: a
    verdict on the ref cannot be read from it); with the server's messages (side band 2,
    `remote:` in git's output)."""

    status: Literal["ok", "ng", "failed"]
    reason: str
    messages: tuple[str, ...]


def push_report(answer: bytes, ref: str, side_band: bool) -> Report | None:
    """receive-pack's report-status for `ref` (inside side band 1 when `side_band`), or None
    when the answer holds none."""
    status = bytearray()
    messages: list[str] = []
    if side_band:
        for data in pkt_lines(answer):
            if data is None:
                break
            band, payload = data[:1], data[1:]
            if band == b"\x01":
                status += payload
            elif band in (b"\x02", b"\x03"):
                text = payload.decode(errors="replace")
                messages += [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
                if band == b"\x03":
                    return Report("failed", messages[-1] if messages else "remote failure",
                                  tuple(messages))  # fmt: skip
    else:
        status = bytearray(answer)
    unpack: str | None = None
    for data in pkt_lines(bytes(status)):
        if data is None:
            break
        line = data.decode(errors="replace").rstrip("\n")
        if line.startswith("unpack "):
            unpack = line[len("unpack ") :]
        elif line == f"ok {ref}" or line.startswith(f"ng {ref} "):
            if unpack != "ok":
                return Report("failed", "unpacker error", tuple(messages))
            if line.startswith("ok "):
                return Report("ok", "", tuple(messages))
            return Report("ng", line[len(f"ng {ref} ") :], tuple(messages))
    return None


# ---------------------------------------------------------------- HTTP


def connect(url: str) -> None:
    """Open (with TLS, handshake) a connection to `url`'s server for the requests to come."""
    connection = _take_connection(url)
    try:
        _connected(connection)
    except OSError:
        connection.close()  # the request connects again (and git runs if it fails)
        return
    _give_connection(url, connection)


def _connected(connection: HTTPConnection) -> None:
    """Connect `connection` if it is not (httpclient.connect: Nagle's algorithm off)."""
    if connection.sock is None:
        from promoter.httpclient import connect

        connect(connection)


def _request(
    remote: Remote, method: str, suffix: str, body: bytes | None, headers: dict[str, str],
    retry: bool, limit: int | None = None,
) -> tuple[int, str, bytes]:  # fmt: skip
    """Send one request to the repository's URL + `suffix` on a pooled connection and read
    the whole answer: (status, content type, body). `retry`: once more on a fresh connection
    when a kept-alive one turns out to be closed by the server. An answer longer than
    `limit` bytes is not read on: the connection is closed and the status is 0."""
    import http.client

    headers = {**headers, "User-Agent": "git/promoter"}
    if remote.token:
        basic = base64.b64encode(f"{remote.username}:{remote.token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    path = urllib.parse.urlsplit(remote.url).path.rstrip("/") + suffix
    for attempt in (1, 2):
        connection = _take_connection(remote.url)
        try:
            _connected(connection)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read() if limit is None else response.read(limit + 1)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            if attempt == 2 or not retry:
                raise
            continue
        except BaseException:
            connection.close()
            raise
        if limit is not None and len(answer) > limit:
            connection.close()
            return 0, "", b""
        _give_connection(remote.url, connection)
        kind = response.getheader("Content-Type", "").split(";")[0].strip()
        return response.status, kind, answer
    raise AssertionError("unreachable")


def _answer(response: tuple[int, str, bytes], kind: str) -> bytes | None:
    """The body of a 200 answer of the content type asked for, else None."""
    status, got, body = response
    return body if status == 200 and got == kind else None


def _take_connection(url: str) -> HTTPConnection:
    """A kept-alive connection to `url`'s server, or a new one; each in one thread's hands
    at a time (two fetches in parallel use two), given back by `_give_connection`."""
    import http.client
    import ssl

    parts = urllib.parse.urlsplit(url)
    with _POOL_LOCK:
        idle = _CONNECTIONS.get(f"{parts.scheme}://{parts.netloc}")
        if idle:
            return idle.pop()
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "https":
        # The CA certificates git would trust (GIT_SSL_CAINFO/CAPATH), else the system's.
        context = ssl.create_default_context(
            cafile=os.environ.get("GIT_SSL_CAINFO") or None,
            capath=os.environ.get("GIT_SSL_CAPATH") or None,
        )
        return http.client.HTTPSConnection(host, port, timeout=60, context=context)
    return http.client.HTTPConnection(host, port, timeout=60)


def _give_connection(url: str, connection: HTTPConnection) -> None:
    parts = urllib.parse.urlsplit(url)
    with _POOL_LOCK:
        _CONNECTIONS.setdefault(f"{parts.scheme}://{parts.netloc}", []).append(connection)
