"""The deployment files, validated as far as these machines allow (no Docker
engine, no Kubernetes cluster): the Kubernetes manifests against the API
schemas (kubernetes-validate, strict), the compose file and the Dockerfile
by their required parts, and every configuration they carry by `dmpflow
check`. What is not run is said in README.md."""

from __future__ import annotations

import re
import subprocess

import kubernetes_validate
import yaml

from support import REPO, dmpflow_path

K8S = REPO / "deploy" / "k8s"


def check_config(text: str, tmp_path) -> None:
    path = tmp_path / "conf.conf"
    path.write_text(text)
    # check tries [state] dir as run would find it: here the container's
    # volume (/var/lib/dmpflow) is a directory of this test's
    proc = subprocess.run([str(dmpflow_path()), "check", "-c", str(path),
                           "-o", f"state.dir={tmp_path / 'state'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_kubernetes_manifests(tmp_path):
    docs = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            kubernetes_validate.validate(d, "1.30.0", strict=True)
            docs[(d["kind"], d["metadata"]["name"])] = d
    sts = docs[("StatefulSet", "dmpflow")]
    pod = sts["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"config": "/etc/dmpflow", "state": "/var/lib/dmpflow"}
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    assert ("Service", "dmpflow") in docs and docs[("Service", "dmpflow")]["spec"]["clusterIP"] == "None"
    conf = docs[("ConfigMap", "dmpflow-config")]["data"]["dmpflow.conf"]
    assert re.search(r"^port = 9464$", conf, re.M) and "address = 0.0.0.0" in conf
    assert "dir = /var/lib/dmpflow" in conf
    check_config(conf, tmp_path)


def test_compose_file(tmp_path):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    svc = compose["services"]
    assert set(svc) == {"kafka", "schema-registry", "generator", "dmpflow"}
    assert svc["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "--registry" in svc["generator"]["command"]
    d = svc["dmpflow"]
    assert "./config:/etc/dmpflow:ro" in d["volumes"]
    assert any(v.endswith(":/var/lib/dmpflow") for v in d["volumes"])
    conf = d["command"][d["command"].index("-c") + 1]
    assert conf.startswith("/etc/dmpflow/")
    text = (REPO / "config" / conf.rsplit("/", 1)[1]).read_text()
    assert "registry.url = http://schema-registry:8081" in text
    check_config(text, tmp_path)


def test_dockerfile_runtime_has_every_linked_library():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and stages[1] == "debian:bookworm-slim", stages
    assert re.search(r"^USER 10001$", text, re.M) and "VOLUME /var/lib/dmpflow" in text
    runtime = text.split("FROM debian:bookworm-slim", 1)[1]
    ldd = subprocess.run(["ldd", str(dmpflow_path())], capture_output=True, text=True,
                         check=True).stdout
    libs = re.findall(r"^\s*(\S+\.so\.\S+) => (\S+)", ldd, re.M)
    ours = [path for name, path in libs if re.match(
        r"lib(rdkafka|avro|rocksdb|inih|jansson|curl|microhttpd)\.", name)]
    assert len(ours) == 7, ours
    for path in ours:
        out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if out.returncode:  # /lib vs /usr/lib (merged /usr)
            out = subprocess.run(["dpkg", "-S", path.replace("/lib/", "/usr/lib/", 1)],
                                 capture_output=True, text=True)
        pkg = out.stdout.split(":", 1)[0]
        assert pkg and re.search(rf"\b{re.escape(pkg)}\b", runtime), (path, pkg)
