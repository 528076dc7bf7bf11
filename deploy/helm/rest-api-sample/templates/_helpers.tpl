{{- define "api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: release "api" gives "api-rest-api-sample", as in the sample. */}}
{{- define "api.fullname" -}}
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

{{- define "api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: app
app.kubernetes.io/part-of: custos
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "api.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Whether the app is attested: the sample's release without scone.cas is not. */}}
{{- define "api.attested" -}}
{{- if and .Values.scone.cas .Values.scone.configId }}true{{ end }}
{{- end }}

{{/* The CAS enclave API port named by scone.cas (host[:port], [v6]:port), default 18765. */}}
{{- define "api.casPort" -}}
{{- $cas := toString .Values.scone.cas }}
{{- if regexMatch "^(\\[[^]]*\\]|[^:]+):[0-9]+$" $cas }}
{{- regexFind "[0-9]+$" $cas }}
{{- else }}18765{{ end }}
{{- end }}

{{/* Hardware mode without a device plugin: the SGX devices come from the node. */}}
{{- define "api.hostDevices" -}}
{{- if and (not .Values.simulation) (eq (toString .Values.useSGXDevPlugin) "disabled") }}true{{ end }}
{{- end }}

{{/* SGX device-plugin resources (see the cas chart's README for the values). */}}
{{- define "api.sgxLimits" -}}
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

{{- define "api.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) }}
{{- $sgx := include "api.sgxLimits" . | fromYaml }}
{{- if $sgx }}
{{- $_ := set $resources "limits" (merge (deepCopy ($resources.limits | default dict)) $sgx) }}
{{- end }}
{{- toYaml $resources }}
{{- end }}
