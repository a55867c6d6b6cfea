#!/usr/bin/env bash
# Validate deploy/k8s as far as it can be without a cluster (docs/deploy.md, "Checking the manifests"):
#   1. the generated resources equal what the registries give (python -m deploy.k8s_gen --check);
#   2. kustomize builds the base and every overlay (kubectl kustomize, or kustomize);
#   3. kubeconform -strict checks every built resource: built-in kinds against the Kubernetes schemas
#      shipped in the kubernetes-validate wheel (dev extras), the operators' kinds against JSON Schemas
#      made from their CRDs at the pinned releases (python -m deploy.k8s_schemas).
#   4. deploy/compose.yaml against the compose-spec JSON Schema (python jsonschema).
# Needs: python with the dev extras, kubectl (or kustomize), kubeconform (or go, to run it at the pinned
# version; go also fetches the compose-spec schema from the compose-go module), and the CRDs:
# CRD_DIR=<folder of CRD YAML files>, or network access to download them.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
K8S_VERSION=${K8S_VERSION:-1.33.0}
STRIMZI=1.2.0 CNPG=1.30.0 KEDA=2.20.2 KUBECONFORM=v0.7.0 COMPOSE_GO=v2.16.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== generated resources"
PYTHONPATH=$PWD "$PYTHON" -m deploy.k8s_gen --check

echo "== kustomize build"
mkdir -p "$work/built"
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  out="$work/built/$(basename "$dir").yaml"
  if command -v kubectl >/dev/null; then kubectl kustomize "$dir" > "$out"; else kustomize build "$dir" > "$out"; fi
  echo "$dir: $(grep -c '^kind:' "$out") resources"
done

echo "== CRD schemas (Strimzi $STRIMZI, CloudNativePG $CNPG, KEDA $KEDA)"
if [ -z "${CRD_DIR:-}" ]; then
  CRD_DIR=$work/crds
  mkdir -p "$CRD_DIR"
  raw=https://raw.githubusercontent.com
  for f in 040-Crd-kafka 043-Crd-kafkatopic 044-Crd-kafkauser 045-Crd-kafkanodepool; do
    curl -fsSL -o "$CRD_DIR/strimzi-$f.yaml" "$raw/strimzi/strimzi-kafka-operator/$STRIMZI/install/cluster-operator/$f.yaml"
  done
  for f in clusters databases; do
    curl -fsSL -o "$CRD_DIR/cnpg-$f.yaml" "$raw/cloudnative-pg/cloudnative-pg/v$CNPG/config/crd/bases/postgresql.cnpg.io_$f.yaml"
  done
  for f in scaledobjects triggerauthentications; do
    curl -fsSL -o "$CRD_DIR/keda-$f.yaml" "$raw/kedacore/keda/v$KEDA/config/crd/bases/keda.sh_$f.yaml"
  done
fi
PYTHONPATH=$PWD "$PYTHON" -m deploy.k8s_schemas "$work/schemas" "$K8S_VERSION" "$CRD_DIR"/*.yaml

echo "== kubeconform $KUBECONFORM, Kubernetes $K8S_VERSION"
if command -v kubeconform >/dev/null; then kc=(kubeconform); else kc=(go run "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM"); fi
"${kc[@]}" -strict -summary -output text \
  -schema-location "$work/schemas/core/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -schema-location "$work/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
  "$work"/built/*.yaml

echo "== deploy/compose.yaml against the compose-spec schema (compose-go $COMPOSE_GO)"
schema_dir=$(go mod download -json "github.com/compose-spec/compose-go/v2@$COMPOSE_GO" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
"$PYTHON" - "$schema_dir/schema/compose-spec.json" deploy/compose.yaml <<'PY'
import json, sys
import jsonschema, yaml
schema = json.load(open(sys.argv[1]))
errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(yaml.safe_load(open(sys.argv[2]))))
for e in errors:
    print(f"{sys.argv[2]}: {'/'.join(map(str, e.path))}: {e.message}")
print(f"{sys.argv[2]}: {'valid' if not errors else f'{len(errors)} errors'}")
sys.exit(1 if errors else 0)
PY
