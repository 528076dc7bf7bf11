{{- define "las.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name when it already holds the chart's ("las"). */}}
{{- define "las.fullname" -}}
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

{{- define "las.selectorLabels" -}}
app.kubernetes.io/name: {{ include "las.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "las.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "las.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: las
app.kubernetes.io/part-of: custos
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "las.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* SGX device-plugin resources (see the cas chart's README for the values). */}}
{{- define "las.sgxLimits" -}}
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

{{- define "las.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) }}
{{- $sgx := include "las.sgxLimits" . | fromYaml }}
{{- if $sgx }}
{{- $_ := set $resources "limits" (merge (deepCopy ($resources.limits | default dict)) $sgx) }}
{{- end }}
{{- toYaml $resources }}
{{- end }}
