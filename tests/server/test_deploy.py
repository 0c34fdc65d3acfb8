"""Deployment files: Kubernetes manifests against the Kubernetes schemas (offline), nginx's own config check,
compose and the image's configs loaded by the server's own settings validation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stt.settings import settings_from_dict
from tests.helpers import ROOT

KUBE_DIR = ROOT / "deploy" / "kubernetes"
KUBE_VERSION = "1.37.0"
NGINX_CONF = ROOT / "deploy" / "nginx" / "stt.conf"


def kube_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBE_DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in kube_documents() if d["kind"] == kind]
    return doc


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    docs = kube_documents()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)  # raises on any unknown or wrong field


def test_a_broken_manifest_is_refused_by_the_validator() -> None:
    deployment = by_kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_deployment_probes_grace_period_and_config_fit_the_server() -> None:
    config = json.loads(by_kind("ConfigMap")["data"]["config.json"])
    settings = settings_from_dict(config, env={})  # the server would accept this config
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["terminationGracePeriodSeconds"] >= 2 * settings.limits.shutdown_timeout_seconds
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["lifecycle"]["preStop"]
    assert container["resources"]["requests"]["cpu"] == str(settings.asr.threads)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert by_kind("PodDisruptionBudget")["spec"]["minAvailable"] >= 1
    ingress = by_kind("Ingress")["metadata"]["annotations"]
    assert ingress["nginx.ingress.kubernetes.io/proxy-body-size"] == "100m"
    assert 100 * 1024 * 1024 == settings.http.request_max_size


def test_nginx_config_matches_the_server_limits() -> None:
    text = NGINX_CONF.read_text()
    settings = settings_from_dict(json.loads((ROOT / "config.json").read_text()), env={})
    size = re.search(r"client_max_body_size (\d+)m;", text)
    assert size and int(size.group(1)) * 1024 * 1024 == settings.http.request_max_size
    assert "least_conn;" in text and "proxy_next_upstream error timeout http_502 http_503 non_idempotent" in text
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text
    live = text[text.index("location ~ ^/(v1/)?listen$"):]
    assert "proxy_set_header Upgrade $http_upgrade" in live and "proxy_read_timeout 4h" in live


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx not installed (make ops-tools installs Debian's nginx where root and apt are available)")
    from bench.scale_out import nginx_config

    conf = nginx_config([18081, 18082], 18080, tmp_path)
    result = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "server 127.0.0.1:18081" in (tmp_path / "stt.conf").read_text()


def test_compose_runs_two_replicas_behind_nginx_that_they_trust() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [name for name, s in services.items() if "STT_CONFIG" in s.get("environment", {})]
    assert len(replicas) == 2
    nginx = services["nginx"]
    assert any("deploy/nginx/stt.conf" in v for v in nginx["volumes"])
    assert set(replicas) <= set(re.findall(r"server (stt-\d):8080", NGINX_CONF.read_text()))
    settings = settings_from_dict(json.loads((ROOT / "deploy" / "compose-config.json").read_text()), env={})
    assert settings.http.trusted_proxies == (nginx["networks"]["stt"]["ipv4_address"] + "/32",)
    for replica in replicas:
        assert services[replica]["stop_grace_period"] == "130s"


def test_image_config_and_dockerfile() -> None:
    settings_from_dict(json.loads((ROOT / "deploy" / "docker-config.json").read_text()), env={})
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim" in dockerfile
    final = dockerfile[dockerfile.rindex("FROM "):]
    assert "USER stt" in final and "HEALTHCHECK" in final and "/health" in final
    assert "/wheels" not in final.replace("--find-links /wheels", "")  # wheels stay in the build stage
