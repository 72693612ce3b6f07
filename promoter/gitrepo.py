"""The one place git runs.

A scratch bare repository talks to one remote: shallow, single-branch, blobless fetches; the
few blobs a plan needs arrive in one batch; new blobs, trees and the commit are written by one
`git fast-import`; a push to an environment branch is a plain fast-forward, and only
promoter's own `promoter/...` branches are ever replaced, with a lease. The token travels in
an HTTP header set through the environment, so it is never in argv, `.git/config` or a URL,
and every error text is scrubbed of it anyway.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from promoter import fastimport, smarthttp
from promoter.errors import EditError, GitError, UsageError, register_secret, scrub
from promoter.fastimport import Identity

# git's scp-like syntax, user@host:path (the user part may carry a `:password` to drop).
_SCP_LIKE = re.compile(r"^(?P<user>[^@/]+)@(?:[\w.-]+|\[[^\]/]*\]):")


@dataclass(frozen=True)
class Remote:
    """Where the environment repository lives, and how to authenticate to it."""

    url: str  # never holds credentials
    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"

    @classmethod
    def parse(cls, location: str, token: str | None = None) -> Remote:
        """Accept https/http URLs (credentials in them are lifted out), ssh, file:// and paths."""
        remote = cls._parse(location, token)
        register_secret(remote.token)
        return remote

    @classmethod
    def _parse(cls, location: str, token: str | None) -> Remote:
        if not location:
            raise UsageError("no repository given: pass --repo URL or set PROMOTER_REPO")
        scp = None if "://" in location else _SCP_LIKE.match(location)
        if scp:
            # user:password@host:path: ssh takes no password from a URL; keep only the user.
            user, _, password = scp["user"].partition(":")
            register_secret(password)
            return cls(url=f"{user}@{location[scp.end('user') + 1 :]}", token=token)
        parts = split_url(location)
        # Credentials never stay in the URL: it goes into the scratch repo's config, and git
        # and promoter echo it in messages.
        register_secret(urllib.parse.unquote(parts.password or ""))
        host_port = parts.netloc.rpartition("@")[2]
        if parts.scheme in ("http", "https"):
            username = urllib.parse.unquote(parts.username or "") or "x-access-token"
            password = urllib.parse.unquote(parts.password or "")
            if parts.username and not parts.password and not token:
                # https://TOKEN@host/... is how some people embed a token.
                username, password = "x-access-token", urllib.parse.unquote(parts.username)
            clean = urllib.parse.urlunsplit((parts.scheme, host_port, parts.path, "", ""))
            return cls(url=clean, token=token or password or None, username=username)
        if parts.scheme in ("ssh", "git", "file"):
            # ssh keeps its user (`git@`, not a secret); git:// and file:// take none.
            user = parts.username if parts.scheme == "ssh" else None
            netloc = f"{user}@{host_port}" if user else host_port
            clean = urllib.parse.urlunsplit(
                (parts.scheme, netloc, parts.path, parts.query, parts.fragment)
            )
            return cls(url=clean, token=token)
        if parts.scheme and len(parts.scheme) > 1:
            raise UsageError(f"unsupported repository URL scheme {parts.scheme!r} in --repo")
        path = Path(location).expanduser().resolve()
        if not path.exists():
            raise UsageError(f"repository path {location!r} does not exist (--repo)")
        # file:// makes git use upload-pack, so --depth and --filter apply to local repos too.
        return cls(url=path.as_uri(), token=token)

    @property
    def host(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "file":
            return "local repository"
        if _SCP_LIKE.match(self.url):
            return self.url.split("@", 1)[1].split(":", 1)[0]
        return parts.hostname or self.url

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()

    def git_env(self) -> dict[str, str]:
        """Environment for every git process: no prompts, no helpers, token as a header."""
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "LC_ALL": "C",
            "LANGUAGE": "C",
        }
        if "GIT_SSH_COMMAND" not in os.environ:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        config = {"credential.helper": "", "core.askPass": "", "protocol.version": "2"}
        if self.token and self.url.startswith(("http://", "https://")):
            basic = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
            config["http.extraHeader"] = f"Authorization: Basic {basic}"
        base = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        for i, (key, value) in enumerate(config.items(), start=base):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        env["GIT_CONFIG_COUNT"] = str(base + len(config))
        return env


def split_url(location: str, option: str = "--repo") -> urllib.parse.SplitResult:
    """urlsplit, with a malformed host or port reported as bad input to `option`."""
    try:
        parts = urllib.parse.urlsplit(location)
        problem = None if parts.port != 0 else "port 0"  # .port checks the port when asked
    except ValueError as err:
        problem = str(err)
    if problem is None:
        return parts
    if "IPv6" in problem and "[" in location and "]" not in location:
        reason = "unclosed '[' in the host (an IPv6 host is written [::1])"
    elif "IPv6" in problem:
        reason = "unbalanced '[' or ']' in the host"
    elif "port" in problem.lower():
        reason = "the port must be a number from 1 to 65535"
    else:
        reason = problem
    raise UsageError(f"{option} {redact_url(location)!r} is not a valid URL: {reason}")


_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<userinfo>[^/?#]*)@")


def redact_url(location: str) -> str:
    """`location` with the password part of its userinfo (or a lone http(s) user) as ***."""
    match = _USERINFO.match(location)
    if not match:
        return location
    user, colon, _ = match["userinfo"].partition(":")
    if colon:
        shown = f"{user}:***"
    elif match["scheme"].lower() in ("http://", "https://"):
        shown = "***"  # https://TOKEN@host: a lone user there is a token
    else:
        shown = user
    return f"{match['scheme']}{shown}@{location[match.end() :]}"


class GitRepo:
    """A scratch bare repository bound to one remote."""

    def __init__(self, remote: Remote, path: Path) -> None:
        self.remote = remote
        self.path = path
        self._env = _process_env(remote)
        self._fetched_blobs: set[str] = set()
        self._commits = 0
        self._partial = True
        self._pending: dict[str, subprocess.Popen[bytes]] = {}
        self._jobs: dict[str, _FetchJob] = {}  # background fetches of a tip (start_fetch)
        self._listed: dict[tuple[str, tuple[str, ...]], dict[str, tuple[str, str, str]]] = {}
        self._made: dict[str, str] = {}  # commit made here (commit) → its one parent
        self._others: list[GitRepo] = []
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()) or "\n" in remote.url:
            # No template (hooks, info/exclude, description): nothing in it is used here.
            self._run("init", "--quiet", "--bare", "--template=", str(path))
            self._configure()
        else:
            self._create()

    def _create(self) -> None:
        """Write in an empty directory what `git init --bare --template=` writes (HEAD, the
        object and ref directories, the config file) with the scratch settings in the config:
        no git process at all for a repo that lives seconds."""
        for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
            (self.path / sub).mkdir(parents=True)
        (self.path / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
        core = "[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n\tbare = true\n"
        if (self.path / "head").exists():  # git init's probe: a case-insensitive file system
            core += "\tignorecase = true\n"
        (self.path / "config").write_text(core + self._settings(), encoding="utf-8")

    def _configure(self) -> None:
        """Write the scratch repo's settings straight into the config file `git init` wrote
        (one git process less per setting): a promisor remote for blobless fetches, and no
        background work."""
        config = self.path / "config"
        text = config.read_text(encoding="utf-8")
        url = self.remote.url
        if "\trepositoryformatversion = 0\n" not in text or "\n" in url:
            for key, value in (("core.repositoryformatversion", "1"), *_SCRATCH_CONFIG):
                self._run("config", key, value)
            self._run("config", "remote.origin.url", url)
            return
        text = text.replace("\trepositoryformatversion = 0\n", "\trepositoryformatversion = 1\n")
        config.write_text(text + self._settings(), encoding="utf-8")

    def _settings(self) -> str:
        """The config file lines of _SCRATCH_CONFIG and the remote's URL."""
        sections: dict[str, list[str]] = {}
        for key, value in (*_SCRATCH_CONFIG, ("remote.origin.url", self.remote.url)):
            section, _, name = key.rpartition(".")
            sub = section.split(".", 1)
            header = f'[{sub[0]} "{sub[1]}"]' if len(sub) == 2 else f"[{section}]"
            sections.setdefault(header, []).append(f"\t{name} = {_config_value(value)}\n")
        return "".join(header + "\n" + "".join(lines) for header, lines in sections.items())

    def close(self) -> None:
        """Stop background fetches nobody waited for (here and in repos made by prefetch)."""
        for proc in self._pending.values():
            _stop(proc)
        self._pending.clear()
        for job in self._jobs.values():
            job.stop()
        self._jobs.clear()
        for other in self._others:
            other.close()

    # ---------------------------------------------------------------- running git

    def _run(self, *args: str, stdin: bytes | None = None, network: bool = False) -> bytes:
        status, out, err = self._exec(*args, stdin=stdin)
        if status != 0:
            raise self._translate(args[0], err, out.decode(errors="replace"), network)
        return out

    def _exec(self, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
        """Run git; (exit status, stdout, stderr with the token scrubbed)."""
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=self.path,
                env=self._env,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None
        err = proc.stderr.decode(errors="replace")
        return proc.returncode, proc.stdout, scrub(err, self.remote.secrets)

    def _spawn(self, *args: str, stdin: bytes) -> subprocess.Popen[bytes]:
        """Start git reading `stdin` (a few lines: it is written to the pipe at once, so it
        must fit in the pipe's buffer); `_finish` reads what it writes, which waits in its
        pipe meanwhile."""
        if len(stdin) > 4096:
            raise ValueError("internal error: _spawn's input must fit in a pipe buffer")
        read, write = os.pipe()
        try:
            with open(write, "wb", closefd=True) as pipe:
                pipe.write(stdin)
            return subprocess.Popen(
                ["git", *args], cwd=self.path, env=self._env,
                stdin=read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None
        finally:
            os.close(read)

    def _finish(self, proc: subprocess.Popen[bytes], verb: str) -> bytes:
        """What a `_spawn`ed git wrote, once it exits; GitError if it failed."""
        out, err = proc.communicate()
        if proc.returncode != 0:
            error = scrub(err.decode(errors="replace"), self.remote.secrets)
            raise self._translate(verb, error, out.decode(errors="replace"), False)
        return out

    def _translate(self, verb: str, stderr: str, stdout: str, network: bool) -> GitError:
        text = scrub(f"{stderr}\n{stdout}", self.remote.secrets)
        lines = [
            line.strip().removeprefix("stderr: ").strip("'").strip()
            for line in text.splitlines()
            if line.strip() and not line.strip().startswith(("hint:", "cmdline:"))
        ]
        host = self.remote.host
        lowered = text.lower()
        if network and (
            "authentication failed" in lowered
            or "could not read username" in lowered
            or "could not read password" in lowered
            or "returned error: 401" in lowered
            or "returned error: 403" in lowered
            or "permission denied" in lowered
        ):
            return GitError(f"authentication failed for {host}: {self._auth_advice()}")
        if network and any(
            marker in lowered
            for marker in ("could not resolve host", "failed to connect", "connection refused")
        ):
            return GitError(f"cannot reach {host}: {_last_fatal(lines)}")
        if network and ("not found" in lowered or "does not appear to be a git" in lowered):
            return GitError(f"repository {self.remote.url} not found on {host} (check --repo)")
        return GitError(f"git {verb} failed: {_last_fatal(lines)}")

    def _auth_advice(self) -> str:
        url = self.remote.url
        if url.startswith(("http://", "https://")):
            return "check the token (--token / PROMOTER_TOKEN)"
        if url.startswith("file://"):
            return "check the file permissions of the repository"
        return (
            "check the SSH key git offers (ssh-agent, ~/.ssh, GIT_SSH_COMMAND) and its access "
            "to the repository"
        )

    # ---------------------------------------------------------------- reading

    def _fetch_args(self, source: str, local: str, depth: int = 1) -> list[str]:
        return [
            "fetch", "--quiet", "--no-tags", f"--depth={depth}", "--filter=blob:none",
            "--no-write-fetch-head", "--recurse-submodules=no",
            "origin", f"+{source}:{local}",
        ]  # fmt: skip

    @staticmethod
    def _refs(branch: str | None) -> tuple[str, str]:
        """(remote ref, local ref) of `branch`, or of the remote's default branch (None).

        Only the internal default-branch read asks for the remote's HEAD: a branch argument
        is always qualified as refs/heads/<branch>, and one called HEAD is refused.
        """
        if branch is None:
            return "HEAD", "refs/promoter/default"
        _check_branch(branch)
        return f"refs/heads/{branch}", f"refs/promoter/fetched/{branch}"

    def fetch(self, branch: str, depth: int = 1) -> str:
        """Fetch the tip of `branch` (and `depth` - 1 commits before it) shallow and blobless;
        return its SHA. When a background fetch of it was started (`start_fetch`), its result
        is used."""
        return self._fetch(branch, depth)

    def fetch_default(self) -> str:
        """Like `fetch`, for the remote's default branch (where its HEAD points)."""
        return self._fetch(None)

    def fetch_tips(self, branches: Iterable[str]) -> dict[str, str]:
        """Fetch the tips of several branches in one shallow, blobless fetch (one negotiation,
        one pack: commits and trees); branch → SHA. A branch named twice is fetched once; one
        that does not exist on the remote is a UsageError naming it."""
        wanted = list(dict.fromkeys(branches))
        if not wanted:
            return {}
        locals_ = [self._refs(branch)[1] for branch in wanted]
        refspecs = [f"+refs/heads/{b}:{local}" for b, local in zip(wanted, locals_, strict=True)]
        options = self._fetch_args("", "", depth=1)[:-1]  # all but the one refspec it makes
        status, out, err = self._exec(*options, *refspecs)
        if status != 0:
            missing = re.search(r"couldn't find remote ref refs/heads/(\S+)", err)
            if missing:
                raise UsageError(
                    f"branch {missing[1]!r} does not exist in {self.remote.url}: create it, "
                    "or fix the environment's `branch:` in promoter.yaml"
                )
            raise self._translate("fetch", err, out.decode(errors="replace"), network=True)
        if b"filtering not recognized" in out or "filtering not recognized" in err:
            self._partial = False
        shas = self._run("rev-parse", *(f"{local}^{{commit}}" for local in locals_)).decode()
        return dict(zip(wanted, shas.split(), strict=True))

    def _fetch(self, branch: str | None, depth: int = 1) -> str:
        source, local = self._refs(branch)
        job = self._jobs.pop(local, None) if depth == 1 else None
        if job is not None:
            status, out, err = job.wait(self.remote.secrets)
        elif depth == 1 and (previous := self._local_tip(local)) is not None:
            # A re-fetch (the retry after a lost race): direct, offering the tip held here.
            done = self._fetch_tip_direct(source, local, have=previous)
            if done:
                return self._fetched_tip(local)
            if done is None:
                status, out, err = 128, b"", f"fatal: couldn't find remote ref {source}\n"
            else:
                status, out, err = self._exec(*self._fetch_args(source, local, depth))
        else:
            status, out, err = self._exec(*self._fetch_args(source, local, depth))
        if status != 0:
            error = self._translate("fetch", err, out.decode(errors="replace"), network=True)
            if "couldn't find remote ref" in str(error) and branch is None:
                raise UsageError(
                    f"the default branch (HEAD) of {self.remote.url} has no commits: push "
                    "promoter.yaml to it, or pass --config PATH"
                ) from None
            if "couldn't find remote ref" in str(error):
                raise UsageError(
                    f"branch {branch!r} does not exist in {self.remote.url}: create it, "
                    "or fix the environment's `branch:` in promoter.yaml"
                ) from None
            raise error
        if b"filtering not recognized" in out or "filtering not recognized" in err:
            self._partial = False
        return self._fetched_tip(local)

    def _local_tip(self, local: str) -> str | None:
        """The commit `local` holds from an earlier fetch in this repo (its loose ref file),
        or None."""
        try:
            sha = (self.path / local).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return sha if _SHA_RE.match(sha) else None

    def _fetched_tip(self, local: str) -> str:
        """The commit a fetch just wrote to `local`, read from its loose ref file (one git
        process less per fetch); `rev-parse` when it is not there as one. A branch always
        points at a commit (git refuses to push anything else to one)."""
        try:
            sha = (self.path / local).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            sha = ""
        return sha if _SHA_RE.match(sha) else self.rev_parse(local)

    def _start(self, key: str, args: list[str]) -> None:
        """Run `git ARGS` in the background under `key` (once); its caller collects it."""
        if key in self._pending:
            return
        try:
            self._pending[key] = subprocess.Popen(
                ["git", *args],
                cwd=self.path,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None

    def start_fetch(self, branch: str) -> None:
        """Start fetching `branch` in the background; the next `fetch(branch)` waits for it."""
        self._start_fetch(branch)

    def start_fetch_default(self) -> None:
        """Start fetching the default branch; the next `fetch_default()` waits for it."""
        self._start_fetch(None)

    def _start_fetch(self, branch: str | None) -> None:
        source, local = self._refs(branch)
        if local not in self._jobs:
            self._jobs[local] = _FetchJob(self, source, local, self._fetch_args(source, local))

    def prefetch(self, branch: str) -> GitRepo:
        """A second scratch repo beside this one, already fetching `branch` in the background.

        Two repos, so this fetch and whatever this repo fetches meanwhile never share a
        shallow file or a lock. Closed with this one.
        """
        _check_branch(branch)
        other = GitRepo(self.remote, self.path.with_name(f"{self.path.name}-{len(self._others)}"))
        self._others.append(other)
        other.start_fetch(branch)
        return other

    def discard(self, branch: str) -> None:
        """Abandon a background fetch of `branch`, if there is one."""
        job = self._jobs.pop(self._refs(branch)[1], None)
        if job is not None:
            job.stop()

    def rev_parse(self, ref: str) -> str:
        return self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()

    def list_files(self, commit: str, paths: Iterable[str]) -> dict[str, tuple[str, str]]:
        """path → (mode, blob id) for those of `paths` that exist as files in `commit`."""
        entries = self._entries(commit, paths)
        return {path: (mode, oid) for path, (mode, kind, oid) in entries.items() if kind == "blob"}

    def _entries(self, commit: str, paths: Iterable[str]) -> dict[str, tuple[str, str, str]]:
        """path → (mode, type, object id) for those of `paths` that `commit`'s tree names."""
        wanted = sorted(set(paths))
        if not wanted:
            return {}
        key = (commit, tuple(wanted))
        if key in self._listed:
            return dict(self._listed[key])
        out = self._run("ls-tree", "-z", "--full-tree", commit, "--", *wanted)
        found: dict[str, tuple[str, str, str]] = {}
        for entry in out.decode().split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, oid = meta.split()
            if path in wanted:
                found[path] = (mode, kind, oid)
        self._listed[key] = dict(found)
        return found

    def read_files(self, commit: str, paths: Iterable[str]) -> dict[str, bytes | None]:
        """Contents of `paths` at `commit` (None where absent), fetching missing blobs at once.

        Only regular files are read: a symbolic link, a submodule or a directory at one of
        `paths` is refused (its text is not the file's, and a commit would keep its mode).
        """
        wanted = sorted(set(paths))
        entries = self._entries(commit, wanted)
        for path, (mode, _, _) in entries.items():
            if mode not in _REGULAR_FILE_MODES:
                what = _ENTRY_KINDS.get(mode, f"an entry of mode {mode}")
                raise EditError(
                    f"{path} must be a regular file, but it is {what} in commit {commit[:12]}: "
                    "pin the file itself"
                )
        blobs = self.read_blobs(oid for _, _, oid in entries.values())
        contents: dict[str, bytes | None] = dict.fromkeys(wanted)
        for path, (_, _, oid) in entries.items():
            contents[path] = blobs[oid]
        return contents

    # ---------------------------------------------------------------- writing

    def commit(
        self,
        parent: str,
        files: Mapping[str, bytes],
        message: str,
        author: Identity,
        committer: Identity,
        when: float | None = None,
    ) -> str:
        """Write `files` over `parent`'s tree as one new commit (not yet pushed); return its SHA."""
        _check_sha(parent)
        modes = self.list_files(parent, files)
        now = time.time() if when is None else when
        # A fresh scratch ref per commit: fast-import then never has to replace one.
        self._commits += 1
        stream = fastimport.commit(
            f"refs/promoter/new/{self._commits}",
            parent,
            message,
            author,
            committer,
            now,
            {
                path: (modes.get(path, ("100644", ""))[0], content)
                for path, content in files.items()
            },
        )
        # get-mark prints the new commit's id on stdout: no rev-parse afterwards.
        out = self._run("fast-import", "--quiet", "--done", stdin=stream)
        sha = out.decode().strip()
        _check_sha(sha)
        self._made[sha] = parent
        return sha

    def push(self, sha: str, branch: str) -> bool:
        """Fast-forward `branch` to `sha`. False when the branch moved meanwhile (a lost race)."""
        _check_branch(branch)
        _check_sha(sha)
        parents = self._parents(sha)
        return self._land(sha, branch, parents, parents[0] if len(parents) == 1 else None,
                          owned=False, args=("origin", f"{sha}:refs/heads/{branch}"))  # fmt: skip

    def _parents(self, sha: str) -> tuple[str, ...]:
        parent = self._made.get(sha)
        return (parent,) if parent else self.read_commit(sha).parents

    def _land(
        self,
        sha: str,
        branch: str,
        parents: tuple[str, ...],
        old: str | None,
        owned: bool,
        args: tuple[str, ...],
    ) -> bool:
        """Move `branch` from `old` (None: absent) to `sha`, directly when it can
        (`_push_direct`), else with `git push ARGS`; True when it moved, False when another
        writer moved it first (a lost race), GitError for any other refusal."""
        refusal: _Refusal | _Untried | None = _UNTRIED
        if len(parents) == 1 and self._direct():
            refusal = self._push_direct(sha, branch, parents[0], old, owned)
        unanswered = refusal is _UNANSWERED
        if isinstance(refusal, _Untried):
            refusal = self._push(branch, *args)
        if refusal is None:
            return True
        held = (old,) if owned else parents  # where the branch is when nobody else moved it
        if unanswered:  # our own unanswered push may be what git push found there
            tip = self.remote_tip(branch)
            if tip == sha:
                return True
            if tip not in held:
                raise GitError(
                    f"push to {branch} on {self.remote.host}: the server did not answer, and "
                    "the branch has moved since, so whether the push landed is unknown: run "
                    "again (a re-run writes nothing if it did)"
                )
        if refusal.lost_race(lambda: self.remote_tip(branch) not in held):
            return False
        raise GitError(refusal.describe(branch, self.remote.host))

    def _push_direct(
        self, sha: str, branch: str, parent: str, old: str | None, owned: bool
    ) -> _Refusal | _Untried | None:
        """What `git push origin SHA:refs/heads/BRANCH` does for a commit on `parent`, with
        the ref advertisement and one receive-pack request sent straight to the server
        (promoter.smarthttp) and the pack built by `git pack-objects` as git push builds it:
        one process where git push runs four, and no lazy fetch (git push, in a blobless
        repo, first fetches a tip it does not know before it refuses to push on it). The
        command names `old` as the branch's old value, so the server moves it only from
        there: for an environment branch `old` is `parent` (a fast-forward and a
        compare-and-swap); for a promoter branch (`owned`) it is the lease, None: must not
        exist (what `git push --force-with-lease` checks). None when the branch moved to `sha`;
        the refusal (git's own words: `fetch first` when the advertisement shows the branch
        moved, else the server's `ng` reason); _UNTRIED when git push must do it (a branch
        that does not exist, a server that answers anything unexpected: git push then finds
        the branch where it is and says what is wrong); _UNANSWERED when the push was sent
        and no verdict came back (it may have landed: `push` then asks)."""
        ref = f"refs/heads/{branch}"
        # The pack is built while the advertisement travels, for what every server of this
        # century advertises (thin packs, offset deltas; rebuilt if it says otherwise): the
        # push request then leaves as soon as the advertisement shows the branch where it was.
        usual = self._pack_args(frozenset({"ofs-delta"}))
        packing: subprocess.Popen[bytes] | None = None
        try:
            packing = self._spawn(*usual, stdin=f"{sha}\n^{parent}\n".encode())
            advertised = smarthttp.receive_pack_refs(self.remote)
            caps = advertised.capabilities if advertised is not None else frozenset()
            if advertised is not None and "report-status" in caps and _sha1_only(caps):
                where = advertised.refs.get(ref)
                if where == sha:
                    return None  # an earlier try of this very push landed
                if where is None and not owned:
                    return _UNTRIED  # git push creates the branch, and says so
                if where != old:
                    return _Refusal("rejected", "stale info" if owned else "fetch first", ())
                args = self._pack_args(caps)
                pack = self._finish(packing, "pack-objects")
                if args != usual:
                    pack = self._run(*args, stdin=f"{sha}\n^{parent}\n".encode())
                report = self._send_pack(sha, ref, old or _ZERO_OID, caps, pack)
                if report is not None and report.status == "ok":
                    return None
                if report is not None and report.status == "ng":
                    said = tuple(line[:300] for line in report.messages)[:6]
                    return _Refusal("remote rejected", report.reason, said)
                # No answer, an unpacker error or a fatal one: git push looks where the
                # branch is (it may be ours already) and pushes or says what is wrong.
                _NO_DIRECT.add(self.remote.url)
                return _UNANSWERED
        except Exception:  # a shortcut: whatever goes wrong, git push does it
            pass
        finally:
            if packing is not None and packing.poll() is None:  # not needed after all
                packing.kill()
                packing.communicate()
        _NO_DIRECT.add(self.remote.url)
        return _UNTRIED

    @staticmethod
    def _pack_args(caps: frozenset[str]) -> list[str]:
        """git pack-objects as git push runs it for a server with `caps`: the new objects,
        deltas against the parent's objects unless it says `no-thin`. Not `--shallow`, which
        git push adds in a shallow repo: the same pack here (the parent is the only
        boundary), but it turns off the sparse walk, and pack-objects then reads every tree
        of the parent (30 ms at 20,000 files)."""
        args = ["pack-objects", "--all-progress-implied", "--revs", "--stdout", "-q"]
        if "no-thin" not in caps:
            args.append("--thin")
        if "ofs-delta" in caps:
            args.append("--delta-base-offset")
        return args

    def _send_pack(
        self, sha: str, ref: str, old: str, caps: frozenset[str], pack: bytes
    ) -> smarthttp.Report | None:
        """Send `pack` with the command that moves `ref` from `old` to `sha`; the report."""
        asked: list[str] = [c for c in ("report-status", "side-band-64k", "quiet") if c in caps]
        if any(c.startswith("agent=") for c in caps):
            asked.append("agent=git/promoter")
        answer = smarthttp.receive_pack(
            self.remote, smarthttp.push_request(old, sha, ref, asked, pack)
        )
        if answer is None:
            return None
        return smarthttp.push_report(answer, ref, side_band="side-band-64k" in asked)

    def lineage(self, branch: str, target: str | None = None, limit: int = 200) -> list[str]:
        """`target` (default: the tip), then the commits after it on `branch` that contain it,
        oldest first. Only commits are fetched (no trees, no blobs), deepening until found."""
        _check_branch(branch)
        local = f"refs/promoter/history/{branch}"
        depth = 1 if target is None else 32
        while True:
            self._run(
                "fetch", "--quiet", "--no-tags", f"--depth={depth}", "--filter=tree:0",
                "--no-write-fetch-head", "--recurse-submodules=no",
                "origin", f"+refs/heads/{branch}:{local}",
                network=True,
            )  # fmt: skip
            tip = self.rev_parse(local)
            if target is None:
                return [tip]
            # Look only among fetched commits: asking git for an unknown id would make it
            # fetch that one object lazily from the promisor remote, without its history.
            history = self._run("rev-list", local).decode().split()
            sha = next((c for c in history if c.startswith(target.lower())), None)
            if sha is not None:
                break
            if len(history) < depth:  # the whole branch is here and target is not in it
                raise UsageError(f"commit {target} is not on {branch}")
            if depth >= limit * 8:
                raise UsageError(f"commit {target} is not among the last {depth} of {branch}")
            depth *= 4
        out = self._run("rev-list", "--reverse", "--ancestry-path", f"{sha}..{tip}")
        return [sha, *out.decode().split()][: limit + 1]

    # ---------------------------------------------------------------- promotions

    def histories(
        self, paths: Mapping[str, Iterable[str]], depth: int
    ) -> dict[str, tuple[list[tuple[str, dict[str, str | None]]], bool]]:
        """`history` of several branches (branch → the paths to follow on it) with one fetch
        of them all, `depth` commits deep (commits and trees, no blobs): branch → (rows,
        whether that is the branch's whole history)."""
        if not paths:
            return {}
        refspecs = []
        for branch in paths:
            _check_branch(branch)
            refspecs.append(f"+refs/heads/{branch}:refs/promoter/trees/{branch}")
        self._run(
            "fetch", "--quiet", "--no-tags", f"--depth={depth}", "--filter=blob:none",
            "--no-write-fetch-head", "--recurse-submodules=no", "origin", *refspecs,
            network=True,
        )  # fmt: skip
        return {
            branch: self._first_parent_rows(f"refs/promoter/trees/{branch}", wanted)
            for branch, wanted in paths.items()
        }

    def _first_parent_rows(
        self, local: str, paths: Iterable[str]
    ) -> tuple[list[tuple[str, dict[str, str | None]]], bool]:
        """What `history` computes once its fetch is done: the first-parent rows of `local`
        (newest first, each with the blob id of every path) and whether they reach the root."""
        listed = self._run("rev-list", "--first-parent", "--parents", local).decode()
        chain = [line.split()[:2] for line in listed.splitlines() if line]
        commits = [row[0] for row in chain]
        shallow_file = self.path / "shallow"
        shallow = set(shallow_file.read_text().split()) if shallow_file.exists() else set()
        complete = bool(commits) and commits[-1] not in shallow
        wanted = sorted(set(paths))
        state: dict[str, str | None] = dict.fromkeys(wanted)
        if commits:
            state.update((p, oid) for p, (_, oid) in self.list_files(commits[0], wanted).items())
        # Walking back from the tip, each commit's diff against its first parent gives the
        # blob ids before it. diff-tree compares ids from the trees and never reads a blob
        # (reading one, even for its size, would fetch it lazily, one round trip each).
        changed: dict[str, dict[str, str | None]] = {}
        pairs = "".join(f"{row[0]} {row[1]}\n" for row in chain if len(row) == 2)
        if pairs and wanted:
            out = self._run(
                "diff-tree", "--stdin", "-r", "--no-renames", "--no-abbrev", "-z", "--", *wanted,
                stdin=pairs.encode(),
            )  # fmt: skip
            tokens = iter(out.decode(errors="surrogateescape").split("\0"))
            current = ""
            for token in tokens:
                if token.startswith(":"):
                    old = token.split()[2]
                    path = next(tokens, "")
                    changed.setdefault(current, {})[path] = None if set(old) == {"0"} else old
                elif _SHA_RE.match(token):
                    current = token
        rows: list[tuple[str, dict[str, str | None]]] = []
        for commit in commits:
            rows.append((commit, dict(state)))
            state.update(changed.get(commit, {}))
        return rows, complete

    def history(
        self, branch: str, paths: Iterable[str], depth: int
    ) -> tuple[list[tuple[str, dict[str, str | None]]], bool]:
        """The first-parent history of `branch`, newest first, fetched `depth` commits deep
        (commits and trees, no blobs), with the blob id of each of `paths` in each commit (None
        where absent); and whether that is the branch's whole history."""
        _check_branch(branch)
        local = f"refs/promoter/trees/{branch}"
        self._run(
            "fetch", "--quiet", "--no-tags", f"--depth={depth}", "--filter=blob:none",
            "--no-write-fetch-head", "--recurse-submodules=no",
            "origin", f"+refs/heads/{branch}:{local}",
            network=True,
        )  # fmt: skip
        return self._first_parent_rows(local, paths)

    # ---------------------------------------------------------------- history and rollback

    def first_parents(self, branch: str, count: int, trees: bool = True) -> tuple[list[str], bool]:
        """The first `count` commits of `branch`'s first-parent chain, newest first, and
        whether that is the branch's whole history. Fetched `count + 1` deep, so the oldest
        one's parent and the parents of every merge among them are here too: with their
        trees (`trees`, blobless, for `touched`), or commits only; never a blob.

        Do not mix both kinds in one repo: a commit fetched without its trees is not fetched
        again by a later fetch that would bring them (use `sibling()`, then `fetch_trees`)."""
        local = f"refs/promoter/log/{branch}"
        proc = self._pending.pop(self._log_key(branch, count, trees), None)
        if proc is not None:  # started by start_first_parents
            raw_out, raw_err = proc.communicate()
            status, out = proc.returncode, raw_out
            err = scrub(raw_err.decode(errors="replace"), self.remote.secrets)
        else:
            status, out, err = self._exec(*self._log_fetch_args(branch, count, trees))
        if status != 0:
            if "couldn't find remote ref" in err:
                raise UsageError(
                    f"branch {branch!r} does not exist in {self.remote.url}: create it, or fix "
                    "the environment's `branch:` in promoter.yaml"
                )
            raise self._translate("fetch", err, out.decode(errors="replace"), network=True)
        if "filtering not recognized" in err:
            self._partial = False
        listed = self._run(
            "rev-list", "--first-parent", f"--max-count={count + 1}", local
        ).decode().split()  # fmt: skip
        shallow_file = self.path / "shallow"
        shallow = set(shallow_file.read_text().split()) if shallow_file.exists() else set()
        complete = len(listed) <= count and bool(listed) and listed[-1] not in shallow
        return listed[:count], complete

    def start_first_parents(self, branch: str, count: int, trees: bool = True) -> None:
        """Start the fetch of `first_parents(branch, count, trees)` in the background; that
        call (with the same arguments) then waits for it. Nothing else may fetch into this
        repo meanwhile (a shallow fetch locks the shallow file): use it on a `sibling()`."""
        key = self._log_key(branch, count, trees)
        self._start(key, self._log_fetch_args(branch, count, trees))

    @staticmethod
    def _log_key(branch: str, count: int, trees: bool) -> str:
        return f"log {branch} {count} {trees}"

    @staticmethod
    def _log_fetch_args(branch: str, count: int, trees: bool) -> list[str]:
        _check_branch(branch)
        return [
            "fetch", "--quiet", "--no-tags", f"--depth={count + 1}",
            "--filter=blob:none" if trees else "--filter=tree:0",
            "--no-write-fetch-head", "--recurse-submodules=no",
            "origin", f"+refs/heads/{branch}:refs/promoter/log/{branch}",
        ]  # fmt: skip

    def read_commits(self, shas: Iterable[str]) -> dict[str, tuple[CommitInfo, str]]:
        """sha → (commit, author name) for commits that are here, in one `cat-file --batch`.
        (Asking for one that is not here would make git fetch it lazily, one round trip.)"""
        wanted = sorted(set(shas))
        for sha in wanted:
            _check_sha(sha)
        if not wanted:
            return {}
        found: dict[str, tuple[CommitInfo, str]] = {}
        out = self._run("cat-file", "--batch", stdin="\n".join(wanted).encode())
        for sha, raw in _parse_batch(out).items():
            header, _, message = raw.decode(errors="replace").partition("\n\n")
            tree, parents, when, author = "", [], 0, ""
            for line in header.splitlines():
                if line.startswith("tree "):
                    tree = line[5:]
                elif line.startswith("parent "):
                    parents.append(line[7:])
                elif line.startswith("author "):
                    author = line[7:].rpartition(" <")[0]
                elif line.startswith("committer "):
                    stamp = line.rsplit(" ", 2)[-2]
                    when = int(stamp) if stamp.isdigit() else 0
            found[sha] = (CommitInfo(tree, tuple(parents), message, when), author)
        return found

    def touched(self, pairs: Iterable[tuple[str, str | None]]) -> dict[str, list[tuple[str, str]]]:
        """For each (commit, base): the files that differ between base's tree and the
        commit's, as (status letter, path); base None compares with the empty tree (a root
        commit). Trees only (diff-tree, no rename detection): never reads a blob."""
        rows = list(pairs)
        for commit, base in rows:
            _check_sha(commit)
            if base is not None:
                _check_sha(base)
        found: dict[str, list[tuple[str, str]]] = {commit: [] for commit, _ in rows}
        lines = "".join(f"{commit} {base}\n" if base else f"{commit}\n" for commit, base in rows)
        if not rows:
            return found
        out = self._run(
            "diff-tree", "--stdin", "--root", "-r", "--no-renames", "--no-abbrev", "-z",
            stdin=lines.encode(),
        )  # fmt: skip
        tokens = iter(out.decode(errors="surrogateescape").split("\0"))
        current = ""
        for token in tokens:
            if token.startswith(":"):
                path = next(tokens, "")
                found.setdefault(current, []).append((token.split()[-1][:1], path))
            elif _SHA_RE.match(token):
                current = token  # each commit's entries follow its id
        return found

    def fetch_trees(self, commits: Iterable[str]) -> None:
        """Fetch the whole trees (no blobs) of commits fetched here without them
        (`first_parents(..., trees=False)`), in one request."""
        trees = sorted({self.read_commit(sha).tree for sha in commits})
        if not trees or not self._partial:
            return
        self._run(
            "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
            "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none",
            "origin", *trees,
            network=True,
        )  # fmt: skip

    def sibling(self) -> GitRepo:
        """Another scratch repo beside this one, on the same remote, closed with it: its
        fetches share no objects or shallow file with this one's."""
        other = GitRepo(self.remote, self.path.with_name(f"{self.path.name}-{len(self._others)}"))
        self._others.append(other)
        return other

    def read_blobs(self, oids: Iterable[str]) -> dict[str, bytes]:
        """The contents of blobs by id, fetching the missing ones in one batch."""
        wanted = sorted(set(oids))
        missing = [oid for oid in wanted if oid not in self._fetched_blobs]
        if missing and self._partial and not self._fetch_direct(missing):
            self._run(
                "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
                "--no-write-fetch-head", "--recurse-submodules=no",
                "--filter=blob:none", "origin", *missing,
                network=True,
            )  # fmt: skip
        self._fetched_blobs.update(missing)
        if not wanted:
            return {}
        return _parse_batch(self._run("cat-file", "--batch", stdin="\n".join(wanted).encode()))

    def _direct(self) -> bool:
        """Whether requests may go straight to the server (promoter.smarthttp): an http(s)
        remote that has not answered anything unexpected yet in this run, and nothing in the
        environment or the user's git config that git would apply and a direct request would
        not (a proxy, TLS settings, URL rewriting, extra headers)."""
        url = self.remote.url
        http = url.startswith(("http://", "https://"))
        return http and url not in _NO_DIRECT and _plain_http(url)

    def _fetch_direct(self, oids: list[str]) -> bool:
        """Fetch objects by id with one protocol v2 `fetch` request sent straight to the
        server over HTTP(S), the pack indexed by `git index-pack`: one round trip, where
        `git fetch` first asks for the ref advertisement (a GET) every time it starts.

        Only for http(s) remotes and when git itself would send the request as plainly: no
        proxy, TLS or URL-rewriting settings in the environment or the user's git config
        (promoter does not reimplement those). False when it is not tried, or when the server
        answers anything but a pack: `git fetch` then fetches, and this remote is not tried
        directly again in this run."""
        if not self._direct():
            return False
        try:
            answer = smarthttp.upload_pack(self.remote, smarthttp.fetch_request(oids))
            found = smarthttp.fetch_answer(answer) if answer is not None else None
            if found is not None:
                self._run("index-pack", "--stdin", "--fix-thin", "--promisor", stdin=found[2])
                return True
        except Exception:  # a shortcut: whatever goes wrong, git fetch does it
            pass
        _NO_DIRECT.add(self.remote.url)
        return False

    def _fetch_tip_direct(self, source: str, local: str, have: str | None = None) -> bool | None:
        """What `git fetch --depth=1 --filter=blob:none origin +SOURCE:LOCAL` does, with two
        protocol v2 requests sent straight to the server (`ls-refs` for the tip, one `fetch`
        of it), where `git fetch` first asks for the ref advertisement: one round trip and
        three git processes fewer. The pack is indexed by `git index-pack`, the shallow
        boundary and the ref are written as git writes them. Same conditions as
        `_fetch_direct`. None when the server lists no such ref; False (`git fetch` then runs,
        and says what is wrong) when not tried or when the server answers anything else.

        `have`: a commit of an earlier fetch here (a re-fetch after a lost race), offered as
        `git fetch` offers it, with this repo's shallow commits, so that the pack holds only
        the commits since (cut at its committer time) and the trees they changed; when the
        tip is still `have`, nothing is fetched."""
        if not self._direct():
            return False
        try:
            answer = smarthttp.upload_pack(self.remote, smarthttp.ls_refs_request(source))
            listed = smarthttp.listed_refs(answer) if answer is not None else None
            tip = listed.get(source) if listed is not None else None
            if listed is not None and tip is None:
                return None  # the server listed its refs, and this one is not among them
            if tip is not None and tip == have:
                return True  # the ref already holds it (and the objects are here)
            if tip is not None:
                haves, boundary, since = [], [], None
                if have is not None:
                    haves, since = [have], self.read_commit(have).committed
                    shallow_file = self.path / "shallow"
                    if shallow_file.exists():
                        boundary = shallow_file.read_text(encoding="ascii").split()
                request = smarthttp.fetch_request([tip], True, haves, boundary, since)
                limit = _REFETCH_LIMIT if haves else None
                answer = smarthttp.upload_pack(self.remote, request, limit)
                found = smarthttp.fetch_answer(answer) if answer is not None else None
                if found is None and haves:  # not ready on what we have, or too much: the tip alone
                    request = smarthttp.fetch_request([tip], shallow=True)
                    answer = smarthttp.upload_pack(self.remote, request)
                    found = smarthttp.fetch_answer(answer) if answer is not None else None
                if found is not None:
                    shallow, unshallow, pack = found
                    self._run("index-pack", "--stdin", "--fix-thin", "--promisor", stdin=pack)
                    self._record_shallow(shallow, unshallow)
                    ref = self.path / local
                    ref.parent.mkdir(parents=True, exist_ok=True)
                    temporary = ref.with_name(ref.name + ".promoter-new")
                    temporary.write_text(f"{tip}\n", encoding="ascii")
                    temporary.replace(ref)
                    return True
        except Exception:  # a shortcut: whatever goes wrong, git fetch does it
            pass
        _NO_DIRECT.add(self.remote.url)
        return False

    def _record_shallow(self, shallow: list[str], unshallow: list[str]) -> None:
        """Add the fetch's shallow commits to the `shallow` file (as `git fetch --depth`
        does: parents beyond them are absent on purpose, not to be fetched lazily)."""
        path = self.path / "shallow"
        known = set(path.read_text(encoding="ascii").split()) if path.exists() else set()
        lines = sorted((known | set(shallow)) - set(unshallow))
        temporary = path.with_name("shallow.promoter-new")
        temporary.write_text("".join(f"{sha}\n" for sha in lines), encoding="ascii")
        temporary.replace(path)

    def warm(self) -> None:
        """Get ready to fetch blobs directly (`_fetch_direct`) while waiting on the network
        anyway: the user's git configuration checked, the HTTP machinery imported and the
        connection to the server opened (with TLS, its handshake done)."""
        if self._direct():
            smarthttp.connect(self.remote.url)

    def tree_blobs(
        self, commit: str, keep: Callable[[str], bool]
    ) -> dict[str, tuple[str, str, int]]:
        """path → (mode, blob id, size) for every regular file of `commit`'s whole tree whose
        path `keep` accepts. The blobs missing here arrive in one batched fetch (oids on
        stdin, so any number fits); their contents are not read (`read_blobs` then reads
        them locally). Paths that are not UTF-8 keep their bytes as surrogate escapes."""
        _check_sha(commit)
        out = self._run("ls-tree", "-r", "-z", "--full-tree", commit)
        files: dict[str, tuple[str, str]] = {}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, kind, oid = meta.decode().split()
            path = raw_path.decode("utf-8", "surrogateescape")
            if kind == "blob" and mode in _REGULAR_FILE_MODES and keep(path):
                files[path] = (mode, oid)
        oids = sorted({oid for _, oid in files.values()})
        missing = [oid for oid in oids if oid not in self._fetched_blobs]
        if missing and self._partial:
            self._run(
                "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
                "--no-write-fetch-head", "--recurse-submodules=no",
                "--filter=blob:none", "--stdin", "origin",
                stdin="".join(f"{oid}\n" for oid in missing).encode(),
                network=True,
            )  # fmt: skip
            self._fetched_blobs.update(missing)
        sizes: dict[str, int] = {}
        if oids:
            checked = self._run("cat-file", "--batch-check", stdin="\n".join(oids).encode())
            for line in checked.decode().splitlines():
                oid, _, size = line.split()
                sizes[oid] = int(size)
        return {path: (mode, oid, sizes[oid]) for path, (mode, oid) in files.items()}

    def remote_tip(self, branch: str) -> str | None:
        """The SHA `branch` points at on the remote now, or None if it does not exist: one
        `ls-refs` request straight to the server when it can (`_direct`), else ls-remote."""
        _check_branch(branch)
        ref = f"refs/heads/{branch}"
        if self._direct():
            try:
                answer = smarthttp.upload_pack(self.remote, smarthttp.ls_refs_request(ref))
                listed = smarthttp.listed_refs(answer) if answer is not None else None
            except Exception:  # a shortcut: whatever goes wrong, ls-remote does it
                listed = None
            if listed is not None:
                return listed.get(ref)
            _NO_DIRECT.add(self.remote.url)
        out = self._run("ls-remote", "origin", f"refs/heads/{branch}", network=True)
        for line in out.decode().splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}" and _SHA_RE.match(sha):
                return sha
        return None

    def read_commit(self, sha: str) -> CommitInfo:
        """Tree, parents, message and committer time of a commit that is present locally."""
        _check_sha(sha)
        raw = self._run("cat-file", "commit", sha).decode(errors="replace")
        header, _, message = raw.partition("\n\n")
        tree, parents, when = "", [], 0
        for line in header.splitlines():
            if line.startswith("tree "):
                tree = line[5:]
            elif line.startswith("parent "):
                parents.append(line[7:])
            elif line.startswith("committer "):
                stamp = line.rsplit(" ", 2)[-2]
                when = int(stamp) if stamp.isdigit() else 0
        return CommitInfo(tree, tuple(parents), message, when)

    def delete_owned(self, branch: str, expected: str) -> bool:
        """Delete a promoter-owned branch (`promoter/...`) if it is still at `expected`; False
        when someone moved it meanwhile (it is then left alone)."""
        _check_branch(branch)
        _check_sha(expected)
        if not branch.startswith("promoter/"):
            raise GitError(f"internal error: {branch!r} is not a promoter/ branch; not deleting it")
        lease = f"--force-with-lease=refs/heads/{branch}:{expected}"
        refusal = self._push(branch, lease, "origin", f":refs/heads/{branch}")
        if refusal is None:
            return True
        if refusal.lost_race(lambda: self.remote_tip(branch) != expected):
            return False
        raise GitError(refusal.describe(branch, self.remote.host))

    def push_owned(self, sha: str, branch: str, expected: str | None) -> bool:
        """Point a promoter-owned branch (`promoter/...`) at `sha`, replacing what is there, but
        only if it is still at `expected` (None: must not exist). False when someone moved it
        meanwhile. Environment branches never go through here: they only fast-forward."""
        _check_branch(branch)
        _check_sha(sha)
        if expected is not None:
            _check_sha(expected)
        if not branch.startswith("promoter/"):
            raise GitError(
                f"internal error: {branch!r} is not a promoter/ branch; refusing to replace it"
            )
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        args = (lease, "origin", f"{sha}:refs/heads/{branch}")
        return self._land(sha, branch, self._parents(sha), expected, owned=True, args=args)

    def _push(self, branch: str, *args: str) -> _Refusal | None:
        """Run `git push --porcelain ARGS`: None when the ref was updated, else how the push of
        `branch` was refused, from git's per-ref status line. A push that fails before any ref
        is considered (authentication, network) raises."""
        status, out, err = self._exec("push", "--porcelain", *args)
        stdout = out.decode(errors="replace")
        if status == 0:
            return None
        refusal = _Refusal.parse(stdout, err, f"refs/heads/{branch}")
        if refusal is None:
            raise self._translate("push", err, stdout, network=True)
        return refusal


class _Untried:
    """A direct push that was not made: git push makes it."""


class _Unanswered(_Untried):
    """A direct push that was sent and got no verdict: git push makes it (or finds it made)."""


_UNTRIED = _Untried()
_UNANSWERED = _Unanswered()
_ZERO_OID = "0" * 40  # a ref's old value when it must not exist (SHA-1 servers only here)


def _sha1_only(capabilities: frozenset[str]) -> bool:
    """Whether the server's objects are named by SHA-1 (no `object-format`, or sha1)."""
    formats = {c.partition("=")[2] for c in capabilities if c.startswith("object-format=")}
    return formats <= {"sha1"}


class CommitInfo(NamedTuple):
    tree: str
    parents: tuple[str, ...]
    message: str
    committed: int  # committer time, seconds since the epoch


@dataclass(frozen=True)
class _Refusal:
    """How the server (or git, before sending) refused the push of one ref."""

    status: str  # "rejected" (by git itself), "remote rejected", "remote failure", ...
    reason: str  # "fetch first", "pre-receive hook declined", "failed to update ref", ...
    remote: tuple[str, ...]  # the server's own `remote:` lines

    # Refused by git because the branch moved since it was fetched: another writer won.
    _MOVED = frozenset({"fetch first", "non-fast-forward", "stale info"})

    @classmethod
    def parse(cls, stdout: str, stderr: str, ref: str) -> _Refusal | None:
        """From `git push --porcelain`: `!<TAB>src:dst<TAB>[status] (reason)` for `ref`."""
        for line in stdout.splitlines():
            fields = line.split("\t")
            if len(fields) < 3 or fields[0] != "!" or fields[1].rpartition(":")[2] != ref:
                continue
            match = re.match(r"^\[(?P<status>[^\]]+)\](?: \((?P<reason>.*)\))?$", fields[2])
            status, reason = (match["status"], match["reason"] or "") if match else (fields[2], "")
            remote = tuple(
                text[:300]
                for raw in stderr.splitlines()
                if raw.startswith("remote:") and (text := raw.removeprefix("remote:").strip())
            )
            return cls(status, reason, remote[:6])
        return None

    def lost_race(self, moved: Callable[[], bool]) -> bool:
        """Whether another writer won: git saw the branch moved, or the server refused the
        update and the branch did move meanwhile. A refusal while the branch stays put is
        the server's own (a hook, a stale lock): it would come again, so it is not retried."""
        if self.status == "rejected":
            return self.reason in self._MOVED
        # Forges word a failed compare-and-swap each their own way (git: `failed to update
        # ref`, `cannot lock ref`, `incorrect old value provided`): the branch having moved is
        # what tells. A refusal for another reason (a hook) while someone else landed is then
        # tried once more on the new tip, and refused again, as itself.
        return self.status == "remote rejected" and moved()

    def describe(self, branch: str, host: str) -> str:
        said = f"; the server said: {' '.join(self.remote)}" if self.remote else ""
        return f"push to {branch} refused by {host}: {self.reason or self.status}{said}"


# Written into every scratch repo's config: blobless fetches from a promisor remote, and
# no garbage collection, maintenance or commit-graph writing in a repo that lives seconds.
_SCRATCH_CONFIG: tuple[tuple[str, str], ...] = (
    ("extensions.partialClone", "origin"),
    ("remote.origin.promisor", "true"),
    ("remote.origin.partialclonefilter", "blob:none"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("fetch.writeCommitGraph", "false"),
    # fast-import keeps its one small pack as it is, instead of running unpack-objects on it.
    ("fastimport.unpackLimit", "1"),
)

# Variables that would point git at another repository than the scratch one.
_REPO_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_COMMON_DIR",
        "GIT_SHALLOW_FILE",
    }
)


def _process_env(remote: Remote) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARIABLES}
    env.update(remote.git_env())
    return env


def _config_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


# ---------------------------------------------------------------- direct requests (smarthttp)

# Remotes that did not answer a direct request as git's server would: git talks to them
# (this run).
_NO_DIRECT: set[str] = set()
# The most a re-fetch since a have may bring (`fetch_request`'s `since`): the commits of a
# busy branch since the last attempt are a few KB each. Commits with one committer time all
# along (an import) would otherwise bring the whole history; past this, the tip alone.
_REFETCH_LIMIT = 8 * 1024 * 1024
# What the user's git configuration says, read once: (environment it was read in, plain).
# Read under a lock: the background fetch and the main thread ask at the same moment.
_PLAIN_CONFIG: list[tuple[tuple[str | None, ...], bool]] = []
_PLAIN_CONFIG_LOCK = threading.Lock()

# Environment variables with which git's HTTP transport would not connect plainly; for
# https also those of its TLS settings that a direct request does not apply (it does apply
# GIT_SSL_CAINFO and GIT_SSL_CAPATH).
_HTTP_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY", "GIT_HTTP_PROXY_AUTHMETHOD", "GIT_PROXY_SSL_CERT",
                   "GIT_PROXY_SSL_KEY", "GIT_PROXY_SSL_CAINFO", "GIT_HTTP_USER_AGENT",
                   "GIT_CONFIG_PARAMETERS")  # fmt: skip
_TLS_VARIABLES = ("GIT_SSL_NO_VERIFY", "GIT_SSL_CERT", "GIT_SSL_KEY",
                  "GIT_SSL_CERT_PASSWORD_PROTECTED", "GIT_SSL_VERSION",
                  "GIT_SSL_CIPHER_LIST")  # fmt: skip
_CONFIG_VARIABLES = ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
                     "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_COUNT")  # fmt: skip


def _plain_http(url: str) -> bool:
    """Whether git would talk to the http(s) remote `url` without a proxy, TLS setting, URL
    rewrite or extra header of the user's (which a direct request would not apply)."""
    names = _HTTP_VARIABLES + (_TLS_VARIABLES if url.startswith("https://") else ())
    if any(os.environ.get(name) for name in names):
        return False
    key = tuple(os.environ.get(name) for name in _CONFIG_VARIABLES)
    with _PLAIN_CONFIG_LOCK:
        if not (_PLAIN_CONFIG and _PLAIN_CONFIG[0][0] == key):
            _PLAIN_CONFIG[:] = [(key, _plain_config())]
        return _PLAIN_CONFIG[0][1]


def _plain_config() -> bool:
    """Whether the user's git configuration sets nothing that git's HTTP transport would
    apply and a direct request would not (http.*, url.*, remote.origin.*, *.proxy)."""
    try:
        proc = subprocess.run(
            ["git", "config", "--list", "--show-scope", "-z"],
            cwd="/",
            env={k: v for k, v in os.environ.items() if k not in _REPO_VARIABLES},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    fields = proc.stdout.decode(errors="replace").split("\0")
    keys = [entry.split("\n", 1)[0].lower() for entry in fields[1::2]]
    return proc.returncode in (0, 1) and not any(
        k.startswith(("http.", "url.", "remote.origin.")) or k.endswith(".proxy") for k in keys
    )


class _FetchJob:
    """A fetch of one tip running in a thread while the caller goes on: `_fetch_tip_direct`
    when it can, else `git fetch ARGS` (a process `stop` kills)."""

    def __init__(self, repo: GitRepo, source: str, local: str, args: list[str]) -> None:
        self._repo, self._source, self._local, self._args = repo, source, local, args
        self._lock = threading.Lock()
        self._stopped = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._result: tuple[int, bytes, str] = (1, b"", "the fetch did not run")
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            done = self._repo._fetch_tip_direct(self._source, self._local)
        except Exception:  # nothing escapes a thread: git fetch does it
            done = False
        if done:
            self._result = (0, b"", "")
            return
        if done is None:  # as git says it, which _fetch turns into the right message
            self._result = (128, b"", f"fatal: couldn't find remote ref {self._source}\n")
            return
        with self._lock:
            if self._stopped:
                return
            try:
                self._proc = subprocess.Popen(
                    ["git", *self._args],
                    cwd=self._repo.path,
                    env=self._repo._env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except FileNotFoundError:
                self._result = (1, b"", "fatal: git is not installed or not on PATH")
                return
        out, err = self._proc.communicate()
        self._result = (self._proc.returncode, out, err.decode(errors="replace"))

    def wait(self, secrets: tuple[str, ...]) -> tuple[int, bytes, str]:
        """(exit status, stdout, stderr with `secrets` scrubbed) once the fetch is done."""
        self._thread.join()
        status, out, err = self._result
        return status, out, scrub(err, secrets)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()


def _parse_batch(out: bytes) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        oid, _, size = out[pos:header_end].decode().split()
        start = header_end + 1
        blobs[oid] = out[start : start + int(size)]
        pos = start + int(size) + 1
    return blobs


# The only modes promoter edits; anything else at a pinned path is refused (read_files).
_REGULAR_FILE_MODES = frozenset({"100644", "100755"})
_ENTRY_KINDS = {"120000": "a symbolic link", "160000": "a submodule", "040000": "a directory"}

_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _check_sha(sha: str) -> None:
    # An empty source in a refspec deletes the branch: never let anything but a SHA through.
    if not _SHA_RE.match(sha):
        raise GitError(f"internal error: {sha!r} is not a commit id; refusing to push")


# What `git check-ref-format --branch` refuses, and more: HEAD and the other pseudo-refs (git
# reads them as something else than a branch) and full ref names (qualified twice otherwise).
_NOT_A_BRANCH = re.compile(
    r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock(?:/|$)|^@$|^refs/|^[A-Z_]*HEAD$"
)


def _check_branch(branch: str) -> None:
    if not branch or _NOT_A_BRANCH.search(branch):
        raise UsageError(
            f"{branch!r} is not a branch name git accepts for an environment (nor HEAD or a "
            "full refs/... name): fix the environment's `branch:` in promoter.yaml"
        )


def _last_fatal(lines: list[str]) -> str:
    """git's last `fatal:`/`error:` line, with the line after it when it ends in a colon
    (`unable to connect to host:` is followed by the reason, e.g. `errno=Connection refused`)."""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line.lower().startswith(("fatal:", "error:")):
            text = line.split(":", 1)[1].strip()
            if text.endswith(":") and i + 1 < len(lines):
                text = f"{text} {lines[i + 1]}"
            return text
    return lines[-1] if lines else "no output"
