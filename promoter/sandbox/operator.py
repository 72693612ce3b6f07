"""An operator simulator: watches environment branches and answers with commit statuses.

It behaves like the real operators do towards CI:
- it syncs only the newest commit of a branch, so commits that land quickly in a row are
  skipped and get no status of their own;
- Argo CD (notifications' github.status) posts `continuous-delivery/<app>` per application,
  pending while syncing, then success or failure;
- Flux (notification-controller) posts `kustomization/<name>/<id>`, only success or failure;
- a commit whose files hold a version marked bad is reported as failed.
Statuses go through the forge adapter, over HTTP, as the real operator's would.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from promoter.forge.base import Forge, State
from promoter.sandbox.envrepo import git_env

Kind = Literal["argocd", "flux"]


@dataclass
class _Sync:
    sha: str
    seen_at: float
    posted: set[str] = field(default_factory=set)  # "pending", "final"


class OperatorSimulator:
    def __init__(
        self,
        forge: Forge,
        bare: Path,
        branches: Mapping[str, Iterable[str]],  # branch -> app names deployed from it
        kind: Kind = "argocd",
        delay: float = 1.0,  # seconds from seeing a commit to reporting its outcome
        bad_versions: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.forge = forge
        self.bare = bare
        self.branches = {branch: tuple(apps) for branch, apps in branches.items()}
        self.kind = kind
        self.delay = delay
        self.bad_versions = set(bad_versions)
        self.clock = clock
        self.posted: list[tuple[str, str, State]] = []  # (sha, context, state), for tests
        self._syncs: dict[str, _Sync] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def step(self) -> None:
        """One reconcile pass: notice new tips, report on those whose delay has passed."""
        now = self.clock()
        for branch, apps in self.branches.items():
            tip = self._tip(branch)
            if tip is None:
                continue
            sync = self._syncs.get(branch)
            if sync is None or sync.sha != tip:
                # A newer tip replaces a sync in flight: the skipped commit gets nothing more.
                sync = self._syncs[branch] = _Sync(tip, now)
            if "pending" not in sync.posted and self.kind == "argocd":
                self._post(tip, apps, branch, "pending", "Argo CD is syncing")
                sync.posted.add("pending")
            if "final" not in sync.posted and now - sync.seen_at >= self.delay:
                state: State = "failure" if self._is_bad(tip) else "success"
                words = "degraded" if state == "failure" else "healthy and synced"
                self._post(tip, apps, branch, state, f"Application is {words}")
                sync.posted.add("final")

    def start(self, interval: float = 0.2) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.step()
                except Exception as err:  # keep watching; tests read the errors
                    self.errors.append(f"{type(err).__name__}: {err}")

        self._thread = threading.Thread(target=loop, name="operator-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def contexts(self, branch: str, apps: Iterable[str]) -> list[str]:
        if self.kind == "flux":
            name = branch.rsplit("/", 1)[-1]
            ident = hashlib.sha256(name.encode()).hexdigest()[:8]
            return [f"kustomization/{name}/{ident}"]
        return [f"continuous-delivery/{app}" for app in apps]

    def _post(self, sha: str, apps: Iterable[str], branch: str, state: State, text: str) -> None:
        for context in self.contexts(branch, apps):
            self.forge.set_status(sha, state, context, text)
            self.posted.append((sha, context, state))

    def _tip(self, branch: str) -> str | None:
        out = self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        return out.strip() or None

    def _is_bad(self, sha: str) -> bool:
        if not self.bad_versions:
            return False
        for version in self.bad_versions:
            if self._git("grep", "-l", "-F", "-e", version, sha).strip():
                return True
        return False

    def _git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.bare), *args],
            capture_output=True,
            text=True,
            env=git_env(),
            check=False,
        )
        return proc.stdout
