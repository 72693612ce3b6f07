"""GitHub's GraphQL API (and the few REST GETs the api path needs) over `http.client`: the
`--commit-via api` hot path, without PyGithub (whose import alone, with requests, jwt and
cryptography, costs more than a round trip) and on one kept-alive connection.

It speaks as the forge adapter's PyGithub client does (promoter.forge.github): the same
`Authorization: token ...` and `User-Agent: promoter` headers, the same GraphQL URL derived
from the API base URL (PyGithub's `Requester.get_graphql_prefix`: a trailing `/v3` dropped,
`/graphql` appended, so `https://api.github.com` -> `/graphql` and GitHub Enterprise's
`https://host/api/v3` -> `/api/graphql`), the same timeout, and the same bounded retry as its
`GithubRetry`: at most `max_tries` tries for connection errors, 429 and 5xx (a server's
`Retry-After` honoured up to `max_wait` seconds, else exponential backoff: none before the
first retry, then `backoff_factor * 2**(n-1)` capped at 8 s), and for a 403 that carries
`Retry-After` or is a rate limit (secondary: `max_wait`; primary: until `X-RateLimit-Reset`,
failing at once when that is more than `max_wait` away). GraphQL's own errors (HTTP 200)
become `HttpFailure(404)` for a lone NOT_FOUND and `HttpFailure(400)` otherwise, as PyGithub
raises them. Failures carry the status and the decoded answer, never a header: the token
cannot leak through them.

Used only when it would connect as plainly as requests does: `GitHubApi.usable()` is False
when a proxy variable is set (requests would honour it) or there is no token (requests would
read ~/.netrc); the caller then stays with PyGithub. Certificates: REQUESTS_CA_BUNDLE or
CURL_CA_BUNDLE when set, else certifi's bundle, as requests chooses them.

`http.client` is imported with this module, when the api path opens, not in the thread that
sends the first request (promoter.commands.update): there it would compete for the GIL with
the imports the main thread does meanwhile, and the request would leave ~25 ms later.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from promoter.httpclient import connect

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")
BACKOFF_MAX = 8.0


class HttpFailure(Exception):
    """An answer GitHub refused with: `status`, the decoded body `data`, its `message`."""

    def __init__(self, status: int, data: Any, message: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.data = data
        self.message = message


class Unreachable(Exception):
    """No answer at all (connection refused or reset, timeout) after every try."""


def graphql_url(base_url: str) -> str:
    """PyGithub's GraphQL URL for an API base URL (Requester.__init__/get_graphql_prefix)."""
    parts = urllib.parse.urlparse(base_url)
    path = (parts.path or "").rstrip("/")
    if path.endswith("/v3"):
        path = path[: -len("/v3")]
    return urllib.parse.urlunparse(parts._replace(path=path + "/graphql"))


def is_rate_limit(message: str) -> tuple[bool, bool]:
    """(rate limited, primary) for a 403's message, by PyGithub's rule."""
    text = (message or "").lower()
    primary = text.startswith("api rate limit exceeded")
    secondary = (
        text.startswith("you have exceeded a secondary rate limit")
        or text.endswith("please retry your request again later.")
        or text.endswith("please wait a few minutes before you try again.")
    )
    return primary or secondary, primary


class GitHubApi:
    """One GitHub API endpoint: `graphql(document, variables)` and `get(path)`; thread-safe
    (one connection, one request at a time)."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        max_tries: int,
        backoff_factor: float,
        max_wait: float,
        timeout: float,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = api_url.rstrip("/")
        self.graphql_url = graphql_url(self.base_url)
        self._token = token
        self._max_tries = max(1, max_tries)
        self._backoff_factor = backoff_factor
        self._max_wait = max_wait
        self._timeout = timeout
        self._sleep = sleep or time.sleep
        self._now = now
        self._environ = os.environ if environ is None else environ
        parts = urllib.parse.urlsplit(self.graphql_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """True when requests would connect as plainly as this client does (see module doc)."""
        if not self._token or self._scheme not in ("http", "https") or not self._host:
            return False
        return not any(
            self._environ.get(name) or self._environ.get(name.upper()) for name in _PROXY_VARIABLES
        )

    # --- requests ------------------------------------------------------------------------------

    def graphql(self, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The whole answer of one GraphQL request (`data`, ...); HttpFailure for errors."""
        body = json.dumps({"query": document, "variables": variables}).encode("utf-8")
        data = self._request("POST", self.graphql_url, body)
        if not isinstance(data, dict):
            raise HttpFailure(200, data, "GitHub answered something else than a JSON object")
        errors = data.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and len(errors) == 1 else None
            if isinstance(first, dict) and first.get("type") == "NOT_FOUND":
                raise HttpFailure(404, data, first.get("message"))
            raise HttpFailure(400, data)
        return data

    def get(self, url: str) -> Any:
        """A REST GET of `url` (under the base URL), decoded."""
        return self._request("GET", url, None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- one request, its retries -------------------------------------------------------------

    def _request(self, method: str, url: str, body: bytes | None) -> Any:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Authorization": f"token {self._token}",
            "User-Agent": "promoter",
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        failures = 0
        with self._lock:
            while True:
                try:
                    status, answer, text = self._send(method, target, body, headers)
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    failures += 1
                    if failures >= self._max_tries:
                        raise Unreachable(_describe(exc)) from None
                    self._sleep(self._backoff(failures))
                    continue
                if status < 400:
                    return _decode(status, text)
                data = _decode_failure(text)
                message = data.get("message") if isinstance(data, dict) else None
                wait = self._retry_wait(status, answer, message, failures + 1)
                failures += 1
                if wait is None or failures >= self._max_tries:
                    raise HttpFailure(status, data, message)
                self._sleep(wait)

    def _send(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPResponse, str]:
        conn = self._conn or self._connect()
        conn.request(method, target, body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read().decode("utf-8", "replace")
        if answer.will_close:
            self._drop()
        return answer.status, answer, text

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            self._conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=_tls_context(self._environ)
            )
        else:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        connect(self._conn)  # Nagle's algorithm off: the body would wait 40 ms for an ACK
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _backoff(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return float(max(0.0, min(BACKOFF_MAX, self._backoff_factor * 2 ** (failures - 1))))

    def _retry_wait(
        self, status: int, answer: http.client.HTTPResponse, message: Any, failures: int
    ) -> float | None:
        """Seconds to wait before trying again, None when this answer is final."""
        retry_after = _retry_after(answer.getheader("Retry-After"), self._now)
        if status == 403 and retry_after is None:
            limited, primary = is_rate_limit(str(message or ""))
            if not limited:
                return None
            wait = float(self._max_wait)
            if primary:
                reset = answer.getheader("X-RateLimit-Reset") or ""
                wait = float(int(reset)) - self._now() + 1 if reset.isdigit() else 0.0
            if wait > self._max_wait:
                return None  # the limit lifts later than a CI job should wait
            return max(wait, self._backoff(failures))
        if status != 403 and status not in _RETRY_STATUSES:
            return None
        if retry_after is not None:
            return min(retry_after, float(self._max_wait))
        return self._backoff(failures)


def _retry_after(value: str | None, now: Callable[[], float]) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _decode(status: int, text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise HttpFailure(status, None, "GitHub answered something else than JSON") from None


def _decode_failure(text: str) -> Any:
    """A refusal's body: JSON when it is, else PyGithub's `{"data": text}`."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"data": text}


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _tls_context(environ: Mapping[str, str]) -> Any:
    import ssl

    cafile = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    if cafile and os.path.isdir(cafile):
        return ssl.create_default_context(capath=cafile)
    return ssl.create_default_context(cafile=cafile)
