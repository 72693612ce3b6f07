# promoter as a container: the GitHub Action runs it (prebuilt, see .github/workflows/release.yml),
# GitLab CI jobs use it as their image. .ci/image-contents installs the package the same way into
# a fresh virtualenv and runs the entrypoints, since CI has no Docker engine.

# Build stage: a wheel of this repository, installed with its dependencies into a virtualenv
# that has no pip of its own; only that virtualenv reaches the final image.
FROM python:3.11-slim-trixie AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY promoter ./promoter
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/promoter \
 && python -m pip --python /opt/promoter/bin/python install /wheels/*.whl \
 && /opt/promoter/bin/promoter --version

FROM python:3.11-slim-trixie
LABEL org.opencontainers.image.source="https://github.com/promoter-gitops/promoter" \
      org.opencontainers.image.description="GitOps promotions from CI" \
      org.opencontainers.image.licenses="Apache-2.0"

# git does all repository work; ssh for ssh:// remotes; certificates for https.
# Not version-pinned (DL3008): Debian replaces a package's version in its archive on every
# security update, so an exact pin breaks the build; the Debian release is pinned by the tag.
# The base's setuptools/wheel go too: nothing is built in this image.
# safe.directory: GitHub runs a Docker action as root with the workspace (owned by the runner's
# user) mounted at /github/workspace, and GitLab's checkout may belong to another user too; git
# refuses to read a repository owned by someone else unless told it is safe. The system
# gitconfig says so for every path, since those mount points are the job's own checkout.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip uninstall --yes --no-cache-dir setuptools wheel \
 && git config --system --add safe.directory '*'

COPY --from=build /opt/promoter /opt/promoter
ENV PATH=/opt/promoter/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN promoter --version

# GitHub runs Docker actions as root with the workspace mounted; the action overrides this
# entrypoint with promoter-action. GitLab jobs call `promoter` in their script.
ENTRYPOINT ["promoter"]
