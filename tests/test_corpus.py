"""Byte-exact pin edits on every file of the real-world corpus in tests/corpus (see its SOURCES.md).

Each pin sets a new value and checks that exactly one line changed, that it now reads as
expected (same indentation, quoting style and trailing comment), that every other byte is
unchanged, and that a safe load of the new text gives the new string at that path.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.errors import EditError
from promoter.yamledit import (
    DocSelector,
    KeyPath,
    Selector,
    get_scalar,
    parse_key_path,
    set_scalar,
)

CORPUS = Path(__file__).parent / "corpus"
SHA_A = "sha256:" + "ab" * 32
COMMIT = "0123abcd" * 5


@dataclass(frozen=True)
class Pin:
    file: str
    path: str
    old: str | None  # what get_scalar reads today
    new: str
    line: str  # the changed line afterwards, without its indentation
    doc: DocSelector | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.path}" + (f"@{self.doc}" if self.doc else "")


ARGO = "argo-helm-argo-cd/values.yaml"
KPS = "kube-prometheus-stack/values.yaml"
NGINX = "ingress-nginx/values.yaml"
REDIS = "bitnami-redis/values.yaml"
KITE_DEV = "konflux-infra-deployments/konflux-kite.development.kustomization.yaml"
MANIFESTS = "microservices-demo/kubernetes-manifests.yaml"
BOUTIQUE = "us-central1-docker.pkg.dev/online-boutique-ci/microservices-demo"
COMMENT = "  # For Helm, this refers to the chart version."

PINS = [
    # -- Helm values: image blocks, quoted empty tags with comments, digests, anchors
    Pin(ARGO, "global.image.tag", "", "v3.1.0", 'tag: "v3.1.0"'),
    Pin(ARGO, "server.image.tag", "", "v3.1.0", 'tag: "v3.1.0" # defaults to global.image.tag'),
    Pin(ARGO, "server.image.repository", "", "quay.io/x/argocd",
        'repository: "quay.io/x/argocd" # defaults to global.image.repository'),
    Pin(ARGO, "dex.image.tag", "v2.45.1", "v2.46.0", "tag: v2.46.0"),
    Pin(ARGO, "redis.image.tag", "8.2.3-alpine", "8.2.4-alpine", "tag: 8.2.4-alpine"),
    Pin(ARGO, "redis-ha.exporter.tag", "v1.75.0", "v1.76.0", "tag: v1.76.0"),
    Pin(ARGO, "server.extensions.image.tag", "v1.0.1", "v1.0.2", 'tag: "v1.0.2"'),
    Pin(REDIS, "image.tag", "8.2.1-debian-12-r0", "8.2.2-debian-12-r1", "tag: 8.2.2-debian-12-r1"),
    Pin(REDIS, "image.digest", "", SHA_A, f'digest: "{SHA_A}"'),
    Pin(REDIS, "sentinel.image.tag", "8.2.1-debian-12-r0", "8.2.2-debian-12-r0",
        "tag: 8.2.2-debian-12-r0"),
    Pin(REDIS, "volumePermissions.image.tag", "12-debian-12-r51", "12-debian-12-r52",
        "tag: 12-debian-12-r52"),
    Pin(REDIS, "metrics.image.repository", "bitnami/redis-exporter", "x/redis-exporter",
        "repository: x/redis-exporter"),
    Pin("grafana-enterprise-logs/values.yaml", "image.tag", "v1.5.2", "v1.6.0", "tag: v1.6.0"),
    Pin("grafana-enterprise-logs/values.yaml", "image.repository", "grafana/enterprise-logs",
        "grafana/gel", "repository: grafana/gel"),
    Pin(NGINX, "controller.image.tag", "v1.15.1", "v1.16.0", 'tag: "v1.16.0"'),
    Pin(NGINX, "controller.image.digest", "sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
        SHA_A, f"digest: {SHA_A}"),
    Pin(NGINX, "controller.image.digestChroot", "sha256:af31d00c9d82c612896b380a9003bd36843b7647b98e4588251c66325317bc72",
        SHA_A, f"digestChroot: {SHA_A}"),
    Pin(NGINX, "controller.admissionWebhooks.patch.image.tag", "v1.6.9", "v1.7.0", "tag: v1.7.0"),
    Pin(NGINX, "defaultBackend.image.tag", "1.5", "1.6", 'tag: "1.6"'),  # float-like stays quoted
    Pin(NGINX, "controller.admissionWebhooks.patch.image.tag", "v1.6.9", "1.10", 'tag: "1.10"'),
    Pin(KPS, "crds.upgradeJob.image.busybox.tag", "latest", "1.37.0", 'tag: "1.37.0"'),
    Pin(KPS, "crds.upgradeJob.image.kubectl.tag", "", "1.33.0",
        'tag: "1.33.0"  # defaults to the Kubernetes version'),
    Pin(KPS, "prometheusOperator.image.tag", "", "v0.94.0", 'tag: "v0.94.0"'),
    Pin(KPS, "prometheus.prometheusSpec.image.tag", "v3.14.0-distroless", "v3.15.0-distroless",
        "tag: v3.15.0-distroless"),
    Pin(KPS, "alertmanager.alertmanagerSpec.image.sha", "", "ab" * 32, f'sha: "{"ab" * 32}"'),
    Pin(KPS, "thanosRuler.thanosRulerSpec.image.tag", "v0.42.4", "v0.43.0", "tag: v0.43.0"),
    # -- Chart.yaml: dependencies by name or alias, quoted ranges, quoted annotation keys
    Pin("bitnami-wordpress/Chart.yaml", "dependencies[name=mariadb].version", "22.x.x", "22.1.0",
        "version: 22.1.0"),
    Pin("bitnami-wordpress/Chart.yaml", "version", "27.0.0", "27.0.1", "version: 27.0.1"),
    Pin("bitnami-wordpress/Chart.yaml", "appVersion", "6.8.2", "6.8.3", "appVersion: 6.8.3"),
    Pin("grafana-enterprise-logs/Chart.yaml", "dependencies[name=loki-distributed].version",
        "0.55.0", "0.56.0", 'version: "0.56.0"'),
    Pin("grafana-enterprise-logs/Chart.yaml", "dependencies[alias=minio].version", "4.0.12",
        "4.0.13", "version: 4.0.13"),
    Pin("grafana-enterprise-logs/Chart.yaml", "appVersion", "v1.5.2", "v1.6.0",
        'appVersion: "v1.6.0"'),
    Pin("grafana-lgtm-distributed/Chart.yaml", "dependencies[alias=loki].version", "^0.80.5",
        "^0.81.0", 'version: "^0.81.0"'),
    Pin("grafana-lgtm-distributed/Chart.yaml", "dependencies[name=oncall].version", "^1.16.5",
        "1.17.0", 'version: "1.17.0"'),
    Pin("grafana-lgtm-distributed/Chart.yaml", "version", "3.0.1", "3.0.2", "version: 3.0.2"),
    Pin("kube-prometheus-stack/Chart.yaml", "dependencies[name=grafana].version", "12.11.1",
        "12.12.0", 'version: "12.12.0"'),
    Pin("kube-prometheus-stack/Chart.yaml", "dependencies[name=prometheus-windows-exporter].version",
        "0.12.*", "0.13.*", 'version: "0.13.*"'),
    Pin("kube-prometheus-stack/Chart.yaml", "appVersion", "v0.93.1", "v0.94.0",
        "appVersion: v0.94.0"),
    Pin("chart-locks/kong-ingress/Chart.yaml", "dependencies[alias=controller].version",
        ">=2.39.0", ">=2.40.0", 'version: ">=2.40.0"'),
    Pin("chart-locks/kong-ingress/Chart.yaml", "appVersion", "3.6", "3.7", 'appVersion: "3.7"'),
    Pin("chart-locks/kong-operator/Chart.yaml", "version", "1.4.0-rc.1", "1.4.0", "version: 1.4.0"),
    Pin("chart-locks/kong-operator/Chart.yaml", 'annotations["artifacthub.io/prerelease"]', "true",
        "false", 'artifacthub.io/prerelease: "false"'),
    Pin("chart-locks/kong-operator/Chart.yaml", "dependencies[name=gwapi-standard-crds].version",
        "1.6.1", "1.7.0", "version: 1.7.0"),
    Pin("chart-locks/prometheus/Chart.yaml", "dependencies[name=kube-state-metrics].version",
        "8.4.*", "8.5.*", 'version: "8.5.*"'),
    Pin("chart-locks/prometheus/Chart.yaml", "appVersion", "v3.14.0", "v3.15.0",
        "appVersion: v3.15.0"),
    Pin("chart-locks/prometheus/Chart.yaml", 'annotations["artifacthub.io/license"]', "Apache-2.0",
        "MIT", '"artifacthub.io/license": MIT'),
    Pin("chart-locks/bitnami-grafana-loki/Chart.yaml", "dependencies[alias=memcachedfrontend].version",
        "7.x.x", "7.9.8", "version: 7.9.8"),
    Pin("chart-locks/bitnami-grafana-loki/Chart.yaml", "version", "6.0.8", "6.0.9", "version: 6.0.9"),
    Pin("chart-locks/bitnami-kube-prometheus/Chart.yaml", "dependencies[name=node-exporter].version",
        "4.x.x", "4.6.0", "version: 4.6.0"),
    Pin("chart-locks/bitnami-kube-prometheus/Chart.yaml", "kubeVersion", ">= 1.16.0-0",
        ">= 1.19.0-0", "kubeVersion: '>= 1.19.0-0'"),
    Pin("chart-locks/grafana-tempo-distributed/Chart.yaml",
        "dependencies[alias=rollout_operator].version", "0.40.0", "0.41.0", "version: 0.41.0"),
    Pin("chart-locks/grafana-tempo-distributed/Chart.yaml", "dependencies[name=minio].repository",
        "https://charts.min.io/", "https://charts.min.io/v2/", "repository: https://charts.min.io/v2/"),
    # -- Chart.lock: entries by index when names repeat, digest, quoted timestamps
    Pin("chart-locks/bitnami-grafana-loki/Chart.lock", "dependencies[2].version", "7.9.7", "7.9.8",
        "version: 7.9.8"),
    Pin("chart-locks/bitnami-grafana-loki/Chart.lock", "dependencies[name=common].version",
        "2.31.4", "2.31.5", "version: 2.31.5"),
    Pin("chart-locks/bitnami-grafana-loki/Chart.lock", "digest",
        "sha256:811075d70d79fddefc17276bdd01d032402db2426310e44647b24c27c9ca7dda", SHA_A,
        f"digest: {SHA_A}"),
    Pin("chart-locks/bitnami-grafana-loki/Chart.lock", "generated",
        "2025-10-10T23:00:48.480831796+02:00", "2025-11-01T10:00:00.123456789+01:00",
        'generated: "2025-11-01T10:00:00.123456789+01:00"'),
    Pin("chart-locks/bitnami-kube-prometheus/Chart.lock",
        "dependencies[name=kube-prometheus-crds].version", "0.1.0", "0.2.0", "version: 0.2.0"),
    Pin("chart-locks/bitnami-kube-prometheus/Chart.lock", "generated",
        "2025-08-21T14:11:54.800608936Z", "2025-09-01T00:00:00Z",
        'generated: "2025-09-01T00:00:00Z"'),
    Pin("chart-locks/grafana-tempo-distributed/Chart.lock", "dependencies[name=minio].version",
        "4.1.0", "5.0.0", "version: 5.0.0"),
    Pin("chart-locks/kong-ingress/Chart.lock", "dependencies[1].version", "2.39.3", "2.40.0",
        "version: 2.40.0"),
    Pin("chart-locks/kong-ingress/Chart.lock", "digest",
        "sha256:a96d25641b9de9ade430c5e290007cab5bff2d1e50c30e961f35ef6a631259fd", SHA_A,
        f"digest: {SHA_A}"),
    Pin("chart-locks/kong-operator/Chart.lock", "dependencies[name=ko-crds].version", "1.1.0",
        "1.2.0", "version: 1.2.0"),
    Pin("chart-locks/kong-operator/Chart.lock", "dependencies[0].repository", "",
        "oci://example.com/charts", 'repository: "oci://example.com/charts"'),
    Pin("chart-locks/prometheus/Chart.lock", "dependencies[name=alertmanager].version", "1.42.0",
        "1.43.0", "version: 1.43.0"),
    Pin("chart-locks/prometheus/Chart.lock", "generated", "2026-08-18T19:54:25.385159732Z",
        "2026-09-01T00:00:00.000000001Z", 'generated: "2026-09-01T00:00:00.000000001Z"'),
    # -- Argo CD Applications: targetRevision with comments, anchors, no final newline
    Pin("argo-cd-docs/application.yaml", "spec.source.targetRevision", "HEAD", "1.2.3",
        "targetRevision: 1.2.3" + COMMENT),
    Pin("argo-cd-docs/application.yaml", "spec.sources[0].targetRevision", "HEAD", "v2.0.0",
        "targetRevision: v2.0.0" + COMMENT),
    Pin("argo-cd-docs/application.yaml", "spec.source.kustomize.images[1]",
        "my-app=gcr.io/my-repo/my-app:0.1", "my-app=gcr.io/my-repo/my-app:0.2",
        "- my-app=gcr.io/my-repo/my-app:0.2"),
    Pin("argo-cd-docs/application.yaml", "spec.sourceHydrator.drySource.targetRevision", "HEAD",
        "main", "targetRevision: main"),
    Pin("cnoe-stacks/istio-ambient-application.yaml", "spec.sources[0].targetRevision", "1.25.0",
        "1.26.0", "targetRevision: &ISTIO_VERSION 1.26.0"),
    Pin("cnoe-stacks/istio-ambient-application.yaml", "spec.sources[4].targetRevision", "v1.2.1",
        "v1.3.0", "targetRevision: v1.3.0"),
    Pin("cnoe-stacks/istio-ambient-application.yaml", "spec.sources[chart=cni].repoURL",
        "https://istio-release.storage.googleapis.com/charts", "https://example.com/charts",
        "- repoURL: 'https://example.com/charts'"),
    Pin("cnoe-stacks/vcluster-application.yaml", "spec.source.targetRevision", "0.20.0", "0.21.0",
        "targetRevision: 0.21.0"),
    Pin("cnoe-stacks/vcluster-application.yaml", "spec.syncPolicy.syncOptions[0]",
        "CreateNamespace=true", "CreateNamespace=false", "- CreateNamespace=false"),
    # -- Flux HelmReleases: chart versions, multi-doc, decoys
    Pin("flux2-hub-spoke-example/ingress-nginx.yaml", "spec.chart.spec.version", "*", "4.11.0",
        'version: "4.11.0"'),
    Pin("flux2-hub-spoke-example/ingress-nginx.yaml", "spec.chart.spec.version", "*", "4.x",
        'version: "4.x"', DocSelector(kind="HelmRelease", name="ingress-nginx")),
    Pin("flux2-hub-spoke-example/ingress-nginx.yaml", "spec.url",
        "https://kubernetes.github.io/ingress-nginx", "https://example.com/charts",
        "url: https://example.com/charts", DocSelector(kind="HelmRepository")),
    Pin("flux2-kustomize-helm-example/podinfo-release.yaml", "spec.values.redis.tag", "8.6.2",
        "8.6.3", "tag: 8.6.3"),
    Pin("flux2-kustomize-helm-example/staging-podinfo-values.yaml", "spec.chart.spec.version",
        ">=1.0.0-alpha", ">=1.1.0-alpha", 'version: ">=1.1.0-alpha"'),
    Pin("flux2-monitoring-example/loki-release.yaml", "spec.chart.spec.version", "6.x", "6.30.1",
        'version: "6.30.1"'),
    Pin("flux2-monitoring-example/loki-release.yaml",
        "spec.values.loki.schemaConfig.configs[0].from", "2024-04-01", "2025-01-01",
        '- from: "2025-01-01"'),
    # -- kustomization images: selectors with dots and slashes, sequences indented or not
    Pin("argo-cd-manifests/base-kustomization.yaml", "images[name=quay.io/argoproj/argocd].newTag",
        "latest", "v3.1.0", "newTag: v3.1.0"),
    Pin("argo-cd-manifests/base-kustomization.yaml", "images[0].newName", "quay.io/argoproj/argocd",
        "ghcr.io/x/argocd", "newName: ghcr.io/x/argocd"),
    Pin("konflux-infra-deployments/crossplane-control-plane.development.kustomization.yaml",
        "images[name=quay.io/konflux-ci/task-runner].newTag", "v1", "v2", "newTag: v2"),
    Pin("konflux-infra-deployments/crossplane-control-plane.development.kustomization.yaml",
        "images[0].digest",
        "sha256:b9ef0479b57a494368a12a02886c650314c9ac7391c6228f21065865aab71c9e", SHA_A,
        f"digest: {SHA_A}"),
    Pin(KITE_DEV, "images[name=quay.io/konflux-ci/kite-prod].newTag",
        "a8f90611b6e50cd7fa53287cf409e5f7940d2de9", COMMIT, f"newTag: {COMMIT}"),
    Pin(KITE_DEV, "images[1].newTag", "a8f90611b6e50cd7fa53287cf409e5f7940d2de9", COMMIT,
        f"newTag: {COMMIT}"),
    # A commit SHA made only of digits and one "e" reads as a float: it must gain quotes.
    Pin("konflux-infra-deployments/konflux-kite.production.kustomization.yaml",
        "images[name=quay.io/konflux-ci/kite-init].newTag",
        "055da067584e6d5dcce86109b9c2df144389bec5", "1234567e" + "1234" * 8,
        f'newTag: "1234567e{"1234" * 8}"'),
    Pin("konflux-infra-deployments/mintmaker.production.kustomization.yaml",
        "images[name=quay.io/konflux-ci/mintmaker-renovate-image].newTag",
        "29dac9d791ee975b699caf0f97809279fd961505", COMMIT, f"newTag: {COMMIT}"),
    Pin("konflux-infra-deployments/mintmaker.staging.kustomization.yaml",
        "images[name=quay.io/konflux-ci/mintmaker-schedule-calculator].newTag",
        "dcda93c47b269d9b250ef62b0bd2e2e2f18aea6f", COMMIT, f"newTag: {COMMIT}"),
    Pin("microservices-demo/container-images-tag-kustomization.yaml",
        f"images[name={BOUTIQUE}/frontend].newTag", "CONTAINER_IMAGES_TAG", "v0.10.7",
        "newTag: v0.10.7"),
    Pin("microservices-demo/container-images-tag-kustomization.yaml", "images[10].newTag",
        "CONTAINER_IMAGES_TAG", "v0.10.7", "newTag: v0.10.7"),
    # -- multi-document manifests: pick the document, then the container by name
    Pin("ingress-nginx/deploy-cloud.yaml", "spec.template.spec.containers[name=controller].image",
        "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
        f"registry.k8s.io/ingress-nginx/controller:v1.16.0@{SHA_A}",
        f"image: registry.k8s.io/ingress-nginx/controller:v1.16.0@{SHA_A}",
        DocSelector(kind="Deployment", name="ingress-nginx-controller")),
    Pin("ingress-nginx/deploy-cloud.yaml", "spec.template.spec.containers[name=create].image",
        "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9@sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
        "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.7.0",
        "image: registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.7.0",
        DocSelector(kind="Job", name="ingress-nginx-admission-create")),
    Pin("ingress-nginx/deploy-cloud.yaml", "spec.template.spec.containers[0].image",
        "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9@sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
        "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.7.0",
        "image: registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.7.0", DocSelector(index=16)),
    Pin(MANIFESTS, "spec.template.spec.containers[name=server].image", f"{BOUTIQUE}/frontend:v0.10.6",
        f"{BOUTIQUE}/frontend:v0.10.7", f"image: {BOUTIQUE}/frontend:v0.10.7",
        DocSelector(kind="Deployment", name="frontend")),
    Pin(MANIFESTS, "spec.template.spec.initContainers[name=frontend-check].image",
        "busybox:1.38.0@sha256:fd8d9aa63ba2f0982b5304e1ee8d3b90a210bc1ffb5314d980eb6962f1a9715d",
        f"busybox:1.38.1@{SHA_A}", f"image: busybox:1.38.1@{SHA_A}",
        DocSelector(kind="Deployment", name="loadgenerator")),
    Pin(MANIFESTS, "spec.template.spec.containers[name=redis].image", "redis:alpine",
        "redis:7.4-alpine", "image: redis:7.4-alpine", DocSelector(name="redis-cart", kind="Deployment")),
]  # fmt: skip

REFUSALS = [
    ("grafana-enterprise-logs/values.yaml", "loki-distributed.loki.image.tag", None,
     "is an alias (*image) of the anchor &image defined at line 16, so the value is shared; "
     "pin the anchor's definition instead: image.tag"),
    ("cnoe-stacks/istio-ambient-application.yaml", "spec.sources[chart=istiod].targetRevision", None,
     "alias (*ISTIO_VERSION) of the anchor &ISTIO_VERSION defined at line 16, so the value is "
     "shared; pin the anchor's definition instead: spec.sources[0].targetRevision"),
    ("chart-locks/bitnami-grafana-loki/Chart.lock", "dependencies[name=memcached].version", None,
     '4 items match [name=memcached] in "dependencies" (lines 5, 8, 11, 14)'),
    ("chart-locks/kong-ingress/Chart.yaml", "dependencies[name=kong].version", None,
     "2 items match [name=kong]"),
    ("bitnami-wordpress/Chart.yaml", "annotations.images", None, "block scalar (| or >) at line 5"),
    ("kube-prometheus-stack/Chart.yaml", 'annotations["artifacthub.io/links"]', None, "block scalar"),
    ("flux2-monitoring-example/loki-release.yaml",
     'spec.values.extraObjects[0].data["loki-datasource.yaml"]', None, "block scalar"),
    ("flux2-kustomize-helm-example/podinfo-release.yaml", "spec.chart.spec.version", None,
     'key "version" not found under "spec.chart.spec" (line 10)'),
    (MANIFESTS, "spec.template.spec.containers[name=server].image", None,
     "found in 10 documents"),
    ("ingress-nginx/deploy-cloud.yaml", "spec.template.spec.containers[0].image",
     DocSelector(kind="Job"), "2 documents match doc: {kind: Job}"),
    ("flux2-hub-spoke-example/ingress-nginx.yaml", "spec.interval", None, "found in 2 documents"),
]  # fmt: skip


def read(name: str) -> str:
    return (CORPUS / name).read_bytes().decode("utf-8")  # no newline translation


def changed_lines(before: str, after: str) -> tuple[str, str]:
    """The one line that differs (old, new); fail unless everything else is byte-identical."""
    old, new = before.split("\n"), after.split("\n")  # keeps "\r", so CRLF is compared too
    diff = list(difflib.unified_diff(old, new, lineterm="", n=0))[2:]
    removed = [line[1:] for line in diff if line.startswith("-")]
    added = [line[1:] for line in diff if line.startswith("+")]
    assert len(removed) == 1, diff
    assert len(added) == 1, diff
    assert len(old) == len(new)
    at = next(i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
    assert (old[at], new[at]) == (removed[0], added[0])
    assert old[:at] == new[:at]
    assert old[at + 1 :] == new[at + 1 :]
    return removed[0], added[0]


def dig(data: Any, path: KeyPath) -> Any:
    for seg in path:
        if isinstance(seg, Selector):
            (data,) = [x for x in data if isinstance(x, dict) and x.get(seg.field) == seg.value]
        else:
            data = data[seg]
    return data


def reload(text: str, path: KeyPath, doc: DocSelector | None) -> Any:
    """The value at `path` as a safe YAML load sees it, in the one document that has it."""
    docs = list(YAML(typ="safe", pure=True).load_all(text))
    found = []
    for i, data in enumerate(docs):
        meta = data.get("metadata") or {} if isinstance(data, dict) else {}
        if doc is not None and not (
            (doc.index is None or doc.index == i)
            and (doc.kind is None or (isinstance(data, dict) and data.get("kind") == doc.kind))
            and (doc.name is None or meta.get("name") == doc.name)
        ):
            continue
        try:
            found.append(dig(data, path))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    (value,) = found
    return value


def test_every_corpus_file_has_a_pin_and_a_provenance_entry() -> None:
    files = {
        str(p.relative_to(CORPUS))
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "SOURCES.md"  # provenance notes, not corpus files
    }
    assert files == {pin.file for pin in PINS}
    sources = read("SOURCES.md")
    assert all(f"`{name}`" in sources for name in files)


@pytest.mark.parametrize("pin", PINS, ids=str)
def test_pin_changes_exactly_one_line_of_the_corpus_file(pin: Pin) -> None:
    text = read(pin.file)
    path = parse_key_path(pin.path)
    assert get_scalar(text, path, pin.doc) == pin.old

    new = set_scalar(text, path, pin.new, pin.doc)

    before, after = changed_lines(text, new)
    indent = before[: len(before) - len(before.lstrip())]
    assert after == indent + pin.line
    value = reload(new, path, pin.doc)
    assert isinstance(value, str)
    assert value == pin.new


@pytest.mark.parametrize("pin", [p for p in PINS if p.old], ids=str)
def test_setting_the_current_value_leaves_the_corpus_file_untouched(pin: Pin) -> None:
    text = read(pin.file)
    assert pin.old is not None
    assert set_scalar(text, parse_key_path(pin.path), pin.old, pin.doc) is text


@pytest.mark.parametrize(("name", "path", "doc", "fragment"), REFUSALS)
def test_corpus_edit_that_must_be_refused(
    name: str, path: str, doc: DocSelector | None, fragment: str
) -> None:
    with pytest.raises(EditError) as info:
        set_scalar(read(name), parse_key_path(path), "9.9.9", doc)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


CRLF_PINS = [
    p
    for p in PINS
    if p.path
    in (
        "server.image.tag",  # argo-cd: tag: "" with a trailing comment
        "defaultBackend.image.tag",  # float-like tag stays quoted
        "spec.syncPolicy.syncOptions[0]",  # file without a final newline
        "images[1].newTag",  # leading ---, blank line between list items
        "spec.sources[0].targetRevision",  # anchor definition
        "spec.template.spec.containers[name=server].image",  # multi-document
    )
]


@pytest.mark.parametrize("pin", CRLF_PINS, ids=str)
def test_crlf_copy_of_a_corpus_file_stays_crlf(pin: Pin) -> None:
    lf = read(pin.file)
    crlf = lf.replace("\n", "\r\n")
    path = parse_key_path(pin.path)

    new = set_scalar(crlf, path, pin.new, pin.doc)

    before, after = changed_lines(crlf, new)
    assert after.endswith("\r") == before.endswith("\r")
    assert new.count("\n") == new.count("\r\n") == crlf.count("\r\n")
    assert new.replace("\r\n", "\n") == set_scalar(lf, path, pin.new, pin.doc)
    assert reload(new, path, pin.doc) == pin.new


def test_file_without_final_newline_keeps_it_missing() -> None:
    text = read("cnoe-stacks/vcluster-application.yaml")
    assert not text.endswith("\n")
    new = set_scalar(text, parse_key_path("spec.syncPolicy.syncOptions[0]"), "Validate=false")
    assert new.endswith("- Validate=false")


def test_anchor_definition_edit_changes_every_alias_in_the_loaded_data() -> None:
    text = read("cnoe-stacks/istio-ambient-application.yaml")
    new = set_scalar(text, parse_key_path("spec.sources[0].targetRevision"), "1.26.0")
    sources = YAML(typ="safe", pure=True).load(new)["spec"]["sources"]
    assert [s["targetRevision"] for s in sources] == ["1.26.0"] * 4 + ["v1.2.1"]
    assert new.count("*ISTIO_VERSION") == 3


def test_set_scalar_on_the_largest_corpus_file_is_fast() -> None:
    text = read(KPS)
    assert len(text) > 200_000
    path = parse_key_path("prometheus.prometheusSpec.image.tag")
    started = time.perf_counter()
    set_scalar(text, path, "v9.9.9")
    # One compose of the file takes about 0.17 s here; a generous bound still catches an
    # accidental second parse per segment or per document.
    assert time.perf_counter() - started < 2.0
