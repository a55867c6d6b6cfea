"""JSON Schemas for kubeconform: ``python -m deploy.k8s_schemas OUT K8S_VERSION CRD.yaml…``.

- Built-in kinds: the Kubernetes schemas shipped in the kubernetes-validate wheel (strict variant),
  copied to ``OUT/core/`` without their ``$id`` and with their references to ``/api/_definitions.json``
  made relative, which kubeconform can follow offline (kubernetes-validate resolves them in its own registry).
- Custom resources: ``OUT/<group>/<kind>_<version>.json`` (kubeconform's ``{{ .Group }}/{{ .ResourceKind
  }}_{{ .ResourceAPIVersion }}.json``) for every served version of every CRD in the files. Strict like
  kubeconform's ``-strict`` for built-in kinds: an object that lists its properties and does not say
  otherwise refuses any other, so a misspelt field is an error rather than silently ignored.

Used by deploy/k8s/validate.sh.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def schemas(crd: dict[str, Any]) -> dict[str, Any]:
    """Relative path -> JSON Schema, one per served version of a CRD."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"].lower()
    out = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        # The API server fills these in for every object: allow them at the root.
        schema.setdefault("properties", {}).update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                                    "metadata": {"type": "object"}})  # fmt: skip
        out[f"{group}/{kind}_{version['name']}.json"] = schema
    return out


def core_schemas(out_dir: Path, k8s_version: str) -> int:
    import kubernetes_validate

    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{k8s_version}-local-strict"
    if not src.is_dir():
        raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {k8s_version}")
    (out_dir / "core").mkdir(parents=True, exist_ok=True)
    files = list(src.glob("*.json"))
    for f in files:
        schema = json.loads(f.read_text())
        schema.pop("$id", None)  # https://kubernetes.io/api/…: references would resolve there, not here
        (out_dir / "core" / f.name).write_text(json.dumps(_relative_refs(schema)))
    return len(files)


def _relative_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: v.removeprefix("/api/") if k == "$ref" and isinstance(v, str) else _relative_refs(v)
                for k, v in schema.items()}  # fmt: skip
    if isinstance(schema, list):
        return [_relative_refs(v) for v in schema]
    return schema


def main() -> None:
    if len(sys.argv) < 4:
        print("usage: python -m deploy.k8s_schemas OUT_DIR K8S_VERSION CRD.yaml...", file=sys.stderr)
        raise SystemExit(2)
    out_dir = Path(sys.argv[1])
    print(f"{core_schemas(out_dir, sys.argv[2])} schemas of Kubernetes {sys.argv[2]} in {out_dir / 'core'}")
    written = []
    for name in sys.argv[3:]:
        for doc in yaml.safe_load_all(Path(name).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for rel, schema in schemas(doc).items():
                path = out_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(schema, indent=1, sort_keys=True))
                written.append(rel)
    if not written:
        print("no CustomResourceDefinition found", file=sys.stderr)
        raise SystemExit(1)
    print(f"{len(written)} schemas: " + ", ".join(sorted(written)))


if __name__ == "__main__":
    main()
