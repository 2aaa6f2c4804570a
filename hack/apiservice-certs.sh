#!/usr/bin/env bash
# Makes the serving certificate of flotta-apiserver in a cluster and a kustomize overlay
# that deploys it: `hack/apiservice-certs.sh OUT_DIR`, then `kubectl apply -k OUT_DIR`.
#
# The kube-apiserver aggregator verifies flotta-apiserver's certificate against the
# APIService's caBundle with the server name <service>.<namespace>.svc, so the
# certificate needs that DNS SAN. This script writes into OUT_DIR:
#   ca.crt, ca.key      a new CA (ECDSA P-256, 10 years), unless --ca-cert/--ca-key name yours
#   tls.crt, tls.key    the serving certificate (ECDSA P-256, --days, default 365) signed by
#                       that CA, SANs <service>.<namespace>.svc[.cluster.local] and
#                       <service>.<namespace>; or your own with --cert/--key (then give
#                       --ca-cert too: the CA to put in the caBundle)
#   kustomization.yaml  deploy/apiservice + the Secret <namespace>/flotta-apiserver-serving
#                       (type kubernetes.io/tls) + the APIService caBundle
# Re-running with the same CA and applying again rotates the certificate in place: the
# Secret keeps its name, the kubelet updates the mounted files and the server reloads them.
# Needs openssl and coreutils. Keep OUT_DIR private: it holds private keys.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: hack/apiservice-certs.sh [options] OUT_DIR
  --namespace NS     namespace of the Service (default flotta)
  --service NAME     name of the Service (default flotta-apiserver)
  --days N           validity of the serving certificate in days (default 365)
  --ca-cert FILE     sign with this CA certificate (PEM) instead of making one
  --ca-key FILE      its private key (PEM), with --ca-cert (not needed with --cert)
  --cert FILE        use this serving certificate (PEM chain) instead of making one
  --key FILE         its private key (PEM), with --cert
USAGE
}

die() {
  printf 'hack/apiservice-certs.sh: %s\n' "$*" >&2
  exit 1
}

namespace=flotta
service=flotta-apiserver
days=365
ca_cert=""
ca_key=""
cert=""
key=""
out=""
while (($#)); do
  case "$1" in
    --namespace) namespace="${2:?}"; shift 2 ;;
    --service) service="${2:?}"; shift 2 ;;
    --days) days="${2:?}"; shift 2 ;;
    --ca-cert) ca_cert="${2:?}"; shift 2 ;;
    --ca-key) ca_key="${2:?}"; shift 2 ;;
    --cert) cert="${2:?}"; shift 2 ;;
    --key) key="${2:?}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [[ -z "$out" ]] || die "one OUT_DIR only"; out="$1"; shift ;;
  esac
done
[[ -n "$out" ]] || { usage >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || die "openssl is needed (apt-get install openssl)"
[[ -z "$cert" && -z "$key" ]] || [[ -n "$cert" && -n "$key" ]] || die "--cert and --key go together"
if [[ -n "$cert" ]]; then
  [[ -n "$ca_cert" ]] || die "--cert needs --ca-cert: the CA the aggregator should trust"
else
  [[ -z "$ca_cert" && -z "$ca_key" ]] || [[ -n "$ca_cert" && -n "$ca_key" ]] ||
    die "--ca-cert and --ca-key go together"
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$repo_root/deploy/apiservice"
mkdir -p "$out"
chmod 700 "$out"
out="$(cd "$out" && pwd)"
umask 077

dns="$service.$namespace.svc"
if [[ -n "$ca_cert" ]]; then
  cp "$ca_cert" "$out/ca.crt"
  [[ -z "$ca_key" ]] || cp "$ca_key" "$out/ca.key"
elif [[ ! -s "$out/ca.crt" || ! -s "$out/ca.key" ]]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key.sec1"
  openssl pkcs8 -topk8 -nocrypt -in "$out/ca.key.sec1" -out "$out/ca.key"
  rm -f "$out/ca.key.sec1"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 \
    -subj "/CN=flotta-apiserver-ca@$(date +%s)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$out/ca.crt"
  echo "made a new CA: $out/ca.crt"
else
  echo "reusing the CA in $out"
fi

if [[ -n "$cert" ]]; then
  cp "$cert" "$out/tls.crt"
  cp "$key" "$out/tls.key"
else
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/tls.key.sec1"
  openssl pkcs8 -topk8 -nocrypt -in "$out/tls.key.sec1" -out "$out/tls.key"
  rm -f "$out/tls.key.sec1"
  cat >"$out/serving.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $dns
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$dns,DNS:$dns.cluster.local,DNS:$service.$namespace
EOF
  openssl req -new -key "$out/tls.key" -config "$out/serving.cnf" -out "$out/tls.csr"
  openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -CAserial "$out/ca.srl" -days "$days" -sha256 \
    -extfile "$out/serving.cnf" -extensions ext -out "$out/tls.crt" 2>/dev/null
  rm -f "$out/tls.csr" "$out/serving.cnf"
fi
openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null ||
  die "tls.crt does not chain to ca.crt"
openssl x509 -in "$out/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$dns" ||
  die "tls.crt has no DNS SAN $dns: the aggregator would reject it"

ca_bundle="$(base64 -w0 <"$out/ca.crt")"
relative_base="$(realpath --relative-to="$out" "$base")"
cat >"$out/kustomization.yaml" <<EOF
# Written by hack/apiservice-certs.sh: deploy/apiservice with its serving certificate.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $relative_base
secretGenerator:
  - name: flotta-apiserver-serving
    namespace: $namespace
    type: kubernetes.io/tls
    files:
      - tls.crt
      - tls.key
    options:
      # A fixed name: applying a new certificate updates the mounted files in place and
      # the server reloads them without a restart.
      disableNameSuffixHash: true
patches:
  - target:
      group: apiregistration.k8s.io
      version: v1
      kind: APIService
      name: v1alpha1.management.project-flotta.io
    patch: |-
      - op: add
        path: /spec/caBundle
        value: $ca_bundle
EOF
chmod 600 "$out"/*
echo "wrote $out/kustomization.yaml; deploy with: kubectl apply -k $out"
