# promoter as a container: the GitHub Action runs it, GitLab CI jobs use it as their image.
FROM python:3.11-slim

# git does all repository work; ssh for ssh:// remotes; certificates for https.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/promoter
COPY pyproject.toml README.md ./
COPY promoter ./promoter
RUN pip install --no-cache-dir . && promoter --version

# GitHub runs Docker actions as root with the workspace mounted; the action overrides this
# entrypoint with promoter-action. GitLab jobs call `promoter` in their script.
ENTRYPOINT ["promoter"]
