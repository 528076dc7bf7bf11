{{/* Name of the chart, or nameOverride. */}}
{{- define "cas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name when it already holds the chart's ("cas"). */}}
{{- define "cas.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: cas
app.kubernetes.io/part-of: custos
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cas.image" -}}
{{- $repository := ternary .Values.sgx.image.repository .Values.image.repository .Values.sgx.enabled }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "cas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cas.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cas.masterKeySecret" -}}
{{- .Values.masterKey.existingSecret | default (printf "%s-master-key" (include "cas.fullname" .)) }}
{{- end }}

{{/*
SGX device-plugin resources, as the SCONE sample's charts name them:
  azure    AKS confidential-computing add-on: EPC memory in MiB
  scone    SCONE's SGX device plugin
  enabled  Intel's SGX device plugin: an enclave and EPC memory
  disabled none (simulation, or devices mounted by other means)
*/}}
{{- define "cas.sgxLimits" -}}
{{- $plugin := toString .Values.useSGXDevPlugin }}
{{- if eq $plugin "azure" }}
kubernetes.azure.com/sgx_epc_mem_in_MiB: {{ int .Values.sgxEpcMem }}
{{- else if eq $plugin "scone" }}
sgx.k8s.io/sgx: 1
{{- else if eq $plugin "enabled" }}
sgx.intel.com/enclave: 1
sgx.intel.com/epc: {{ printf "%dMi" (int .Values.sgxEpcMem) | quote }}
{{- else if ne $plugin "disabled" }}
{{- fail (printf "useSGXDevPlugin=%s: expected azure, scone, enabled or disabled" $plugin) }}
{{- end }}
{{- end }}

{{/* The container's resources: .Values.resources with the SGX device limits added. */}}
{{- define "cas.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) }}
{{- $sgx := include "cas.sgxLimits" . | fromYaml }}
{{- if $sgx }}
{{- $_ := set $resources "limits" (merge (deepCopy ($resources.limits | default dict)) $sgx) }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/* "true" when the CAS uses the shared PostgreSQL store, else empty. */}}
{{- define "cas.postgres" -}}
{{- if .Values.store.postgres.existingSecret }}true{{ end }}
{{- end }}

{{/*
Combinations that cannot work, refused before anything is applied. Included by every workload
template, so `helm template` and `helm install` fail with the message.
*/}}
{{- define "cas.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.store.postgres.existingSecret) }}
{{- fail (printf "replicaCount=%d needs the PostgreSQL store: the embedded store is one file with one writer and cannot be shared; set store.postgres.existingSecret (a Secret holding the database URL) and store.postgres.caSecret, or replicaCount=1" $replicas) }}
{{- end }}
{{- if .Values.sgx.enabled }}
{{- include "cas.validateSgx" . }}
{{- else if and .Values.store.postgres.existingSecret (not .Values.store.postgres.caSecret) }}
{{- fail "store.postgres.existingSecret is set but store.postgres.caSecret is not: the CAS connects to the database over TLS only, verified against the CA certificate(s) in that Secret (for Azure Database for PostgreSQL, its root CAs: docs/deploy-azure.md)" }}
{{- end }}
{{- if and .Values.store.postgres.caSecret (not .Values.store.postgres.existingSecret) }}
{{- fail "store.postgres.caSecret is set but store.postgres.existingSecret is not: name the Secret holding the database URL too" }}
{{- end }}
{{- end }}

{{/*
The CAS in an enclave: nothing secret and nothing that decides trust may come from the host.
*/}}
{{- define "cas.validateSgx" -}}
{{- $why := "an enclave CAS must not be given its master key by the host: it gets it by Azure Key Vault Secure Key Release, configured in the image's measured cas.toml (docs/deploy-azure.md)" }}
{{- if .Values.masterKey.existingSecret }}
{{- fail (printf "sgx.enabled with masterKey.existingSecret=%s: %s; unset masterKey.existingSecret" .Values.masterKey.existingSecret $why) }}
{{- end }}
{{- if .Values.tls.existingSecret }}
{{- fail (printf "sgx.enabled with tls.existingSecret=%s: the CAS's TLS private key must be made in the enclave (it is kept encrypted to the enclave), not given by the host; unset tls.existingSecret" .Values.tls.existingSecret) }}
{{- end }}
{{- if .Values.config.azure.caConfigMap }}
{{- fail (printf "sgx.enabled with config.azure.caConfigMap=%s: the CAs the enclave trusts must be in its measurement; put them in the image and list them in its cas.toml and manifest (deploy/gramine)" .Values.config.azure.caConfigMap) }}
{{- end }}
{{- if .Values.store.postgres.caSecret }}
{{- fail (printf "sgx.enabled with store.postgres.caSecret=%s: the database's CA must be in the enclave's measurement: build the image with STORE_POSTGRES=true and the CA at /etc/custos-cas/store-ca.pem, and unset store.postgres.caSecret" .Values.store.postgres.caSecret) }}
{{- end }}
{{- if eq (toString .Values.useSGXDevPlugin) "disabled" }}
{{- fail "sgx.enabled with useSGXDevPlugin=disabled: the enclave needs the SGX device; set useSGXDevPlugin to azure (AKS), enabled (Intel's plugin) or scone" }}
{{- end }}
{{- if and (ne (toString .Values.useSGXDevPlugin) "scone") (lt (int .Values.sgxEpcMem) 1024) }}
{{- fail (printf "sgx.enabled with sgxEpcMem=%d: the CAS enclave is 1024 MiB (sgx.enclave_size in deploy/gramine/custos-cas.manifest.template); set sgxEpcMem=1024" (int .Values.sgxEpcMem)) }}
{{- end }}
{{- end }}
