"""The sluice chart through Helm 4, offline, with no helm binary.

helm-python-sdk ships Helm's own Go SDK (v4) as a shared library and calls it with ctypes:
`helm_python.lint` is `helm lint`, and `Config.install(..., dry_run="client")` is what
`helm template` runs (an install that renders, validates the values against values.schema.json,
orders the objects and never contacts a cluster). `Chart.crds` gives the files of crds/, which
`helm template` leaves out unless asked.

Used by tests/deploy/check.py and, as `python tests/deploy/chart.py render DIR`, by
scripts/render-manifests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "sluice"
MANIFESTS = ROOT / "deploy" / "manifests"
RELEASE = "sluice"
NAMESPACE = "sluice"
CRD_FILE = "rollouts.sluice.dev.yaml"
# A loopback port nothing listens on: a client dry run never calls the cluster, and should it ever
# try, it fails here rather than reach whatever cluster KUBECONFIG names.
NO_CLUSTER = "http://127.0.0.1:9"

HEADER = (
    "# Rendered from deploy/helm/sluice with its default values (release sluice, namespace sluice)\n"
    "# by scripts/render-manifests: edit the chart, not this file.\n"
)


def load_values(path: Path | None) -> dict | None:
    """A values file as Helm reads it (None: the chart's defaults)."""
    if path is None:
        return None
    return helm.values_from_yaml(Path(path).read_text())


def template(values: dict | None = None, namespace: str = NAMESPACE) -> str:
    """`helm template sluice deploy/helm/sluice -n NAMESPACE`: the manifest, in Helm's install order.

    Raises helm.HelmError with Helm's message when the values are refused.
    """
    with helm.Config(storage_driver="memory", namespace=namespace, kube_apiserver=NO_CLUSTER) as cfg:
        release = cfg.install(str(CHART), RELEASE, values, namespace=namespace, dry_run="client")
    return release["manifest"]


def objects(manifest: str) -> list[dict]:
    """The objects of a multi-document YAML text (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def lint(values: dict | None = None, kube_version: str | None = None) -> dict:
    """`helm lint --strict` (warnings count as errors); findings come back as data."""
    return helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=kube_version)


def crd_text() -> str:
    """The Rollout CRD exactly as the chart ships it in crds/."""
    with helm.Chart.load(str(CHART)) as chart:
        (crd,) = [c for c in chart.crds if c["name"] == f"crds/{CRD_FILE}"]
    return crd["data"]


# The controller's pod meets the restricted Pod Security profile: the namespace enforces it.
NAMESPACE_YAML = f"""apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/name: sluice
    pod-security.kubernetes.io/enforce: restricted
"""

# Named `Kustomization`, one of the three names kustomize reads, so that `kubectl apply -f` on this
# directory skips it (it reads only .yaml, .yml and .json files): a kustomization.yaml there would be
# sent to the API server as an object and fail.
KUSTOMIZATION = f"""# kubectl apply -k deploy/manifests      (or: kubectl apply -f deploy/manifests)
# The Secret of the API's tokens (sluice-api-tokens, key tokens.yaml) is not among these: the pod
# waits for it. See the chart's NOTES.txt for how to make it.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - namespace.yaml
  - {CRD_FILE}
  - sluice.yaml
"""


def manifest_files() -> dict[str, str]:
    """deploy/manifests as it should be: file name to content.

    `kubectl apply -f DIR` takes the files in name order, so the Namespace (namespace.yaml) comes
    before the objects in it (sluice.yaml); the CRD needs nothing before it.
    """
    return {
        "Kustomization": KUSTOMIZATION,
        "namespace.yaml": HEADER + NAMESPACE_YAML,
        CRD_FILE: crd_text(),
        "sluice.yaml": HEADER + template().strip("-\n") + "\n",
    }


def write_manifests(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in manifest_files().items():
        (out / name).write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "render":
        sys.exit("usage: chart.py render DIR")
    write_manifests(Path(sys.argv[2]))
