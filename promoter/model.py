"""Domain values: image references, chart versions, pins to apply and changes made. Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from promoter.errors import UsageError

# OCI distribution grammar (distribution/reference): tag, digest, path component, domain.
_TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_DIGEST = r"(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]+)?"
)
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"

TAG_RE = re.compile(rf"^{_TAG}$")
DIGEST_RE = re.compile(rf"^{_DIGEST}$")
REFERENCE_RE = re.compile(
    rf"^(?P<repository>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
# semver.org's own regular expression for SemVer 2.0.0.
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@dataclass(frozen=True)
class ImageRef:
    """What CI built: a tag, or a full reference split into repository, tag and digest."""

    tag: str | None
    repository: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse `1.4.2`, `ghcr.io/acme/web:1.4.2`, `...:1.4.2@sha256:<hex>`; ValueError if bad."""
        if TAG_RE.match(text):
            return cls(tag=text)
        if text.startswith("@") and DIGEST_RE.match(text[1:]):
            return cls(tag=None, digest=text[1:])
        if not any(c in text for c in "/:@"):
            raise ValueError(_image_problem(text))
        match = REFERENCE_RE.match(text)
        if not match:
            raise ValueError(_image_problem(text))
        if not match["tag"] and not match["digest"]:
            raise ValueError(
                f"{text!r} names no tag or digest (expected NAME:TAG or NAME@sha256:...)"
            )
        if not match["tag"] and re.match(r"^v?[0-9][^/:]*$", match["repository"]):
            # `1.4.2@sha256:...` is a valid reference to a repository called "1.4.2": surely
            # meant as a tag, which a reference can only carry after its repository.
            name = match["repository"]
            raise ValueError(
                f"{text!r} reads as a repository named {name!r} pinned by digest; for tag "
                f"{name} and a digest write REPOSITORY:{name}@sha256:..."
            )
        return cls(tag=match["tag"], repository=match["repository"], digest=match["digest"])

    def __str__(self) -> str:
        text = self.repository or ""
        if self.tag:
            text += f":{self.tag}" if text else self.tag
        if self.digest:
            text += f"@{self.digest}"
        return text


def _image_problem(text: str) -> str:
    if not text:
        return "empty image tag"
    if "@" in text and not DIGEST_RE.match(text.rsplit("@", 1)[1]):
        return f"{text!r} has a malformed digest (expected sha256: and 64 lowercase hex digits)"
    if len(text) > 128 and not any(c in text for c in "/:@"):
        return f"image tag {text[:20]!r}... is {len(text)} characters long (at most 128)"
    if not any(c in text for c in "/:@"):
        return (
            f"{text!r} is not a valid image tag "
            "(1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
        )
    return f"{text!r} is not a valid image reference (expected [REGISTRY/]PATH[:TAG][@DIGEST])"


REPOSITORY_RE = re.compile(rf"^{_NAME}$")
# What a chart version field may hold besides a SemVer: a Helm/Flux constraint (`~1.2.0`,
# `>=1.0.0 <2.0.0`, `1.2.x`, `*`).
_CHART_CONSTRAINT_RE = re.compile(r"^[0-9A-Za-z.+~^<>=*|,-]+(?: [0-9A-Za-z.+~^<>=*|,-]+)*$")
_FIELD_GRAMMAR = {
    "tag": ("an image tag", TAG_RE),
    "digest": ("an image digest (sha256:<64 hex>)", DIGEST_RE),
    "repository": ("an image repository", REPOSITORY_RE),
    "ref": ("an image reference", REFERENCE_RE),
    "version": ("a chart version or constraint", _CHART_CONSTRAINT_RE),
}


def pinned_value_problem(field: str, value: str) -> str | None:
    """Why a value read from the environment repo cannot be a pin's `field` (tag, digest,
    repository, ref, version), or None. "" (null: a cleared digest, say) is always fine.
    Values read from the repo are checked with the command line's grammar before they are
    copied elsewhere or written into a message."""
    if not value:
        return None
    what, grammar = _FIELD_GRAMMAR[field]
    if len(value) > 512 or not grammar.match(value):
        return f"{show_value(value[:100])} is not {what}"
    return None


def parse_chart_version(text: str) -> str:
    """A Helm chart version must be SemVer 2 (`1.2.3`, `1.2.3-rc.1+build.5`)."""
    if not SEMVER_RE.match(text):
        hint = " (drop the leading v)" if text.startswith("v") and SEMVER_RE.match(text[1:]) else ""
        raise ValueError(f"{text!r} is not a SemVer 2 version like 1.2.3 or 1.2.3-rc.1{hint}")
    return text


@dataclass(frozen=True)
class Change:
    """One scalar that moved: which pin, where, from what, to what."""

    app: str
    pin: str  # "web/web" for an image, "web/chart" for a chart
    file: str
    key: str
    old: str | None
    new: str

    @property
    def trailer(self) -> str:
        pin = self.app if self.pin == f"{self.app}/chart" else self.pin
        what = "chart" if self.pin == f"{self.app}/chart" else self.key
        return f"{pin} {show_value(what)} {show_value(self.old)} -> {show_value(self.new)}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "app": self.app,
            "pin": self.pin,
            "file": self.file,
            "key": self.key,
            "old": self.old,
            "new": self.new,
        }


_PLAIN_VALUE = re.compile(r"^[!#-~][!-~]*$")  # printable ASCII, no space, not opening a quote


def show_value(value: str | None) -> str:
    """A value for one line of text, a trailer or a log: as it is when it is plain printable
    ASCII (every tag, digest, reference and version is), else JSON-quoted with every control,
    space and non-ASCII character escaped, so a value can never break or start a line."""
    if not value:
        return '""'
    if _PLAIN_VALUE.match(value):
        return value
    return json.dumps(value).replace("\x7f", "\\u007f")


@dataclass(frozen=True)
class PinRequest:
    """One `--image APP[/IMAGE]=VALUE` or `--chart APP=VERSION` from the command line."""

    flag: str  # as typed, for messages: "--image web=1.4.2"
    app: str
    image: str | None  # None for a chart
    ref: ImageRef | None = None
    version: str | None = None


def parse_image_flag(text: str) -> PinRequest:
    target, value = _split_flag("--image", text, "APP[/IMAGE]=TAG|REFERENCE")
    app, _, image = target.partition("/")
    try:
        ref = ImageRef.parse(value)
    except ValueError as err:
        raise UsageError(f"--image {text}: {err}") from None
    return PinRequest(flag=f"--image {text}", app=app, image=image or None, ref=ref)


def parse_chart_flag(text: str) -> PinRequest:
    app, value = _split_flag("--chart", text, "APP=VERSION")
    try:
        version = parse_chart_version(value)
    except ValueError as err:
        raise UsageError(f"--chart {text}: {err}") from None
    return PinRequest(flag=f"--chart {text}", app=app, image=None, version=version)


def _split_flag(flag: str, text: str, shape: str) -> tuple[str, str]:
    target, sep, value = text.partition("=")
    if not sep or not target or not value:
        raise UsageError(f"{flag} {text!r}: expected {shape}")
    return target, value
