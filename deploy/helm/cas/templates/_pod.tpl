{{/*
The pod template the StatefulSet (embedded store) and the Deployment (PostgreSQL store) share.
*/}}
{{- define "cas.podTemplate" -}}
{{- $postgres := include "cas.postgres" . -}}
{{- $sgx := .Values.sgx.enabled -}}
template:
  metadata:
    labels:
      {{- include "cas.labels" . | nindent 6 }}
      {{- with .Values.podLabels }}
      {{- range $key, $value := . }}
      {{ $key }}: {{ $value | toString | quote }}
      {{- end }}
      {{- end }}
    annotations:
      checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
      {{- with .Values.podAnnotations }}
      {{- range $key, $value := . }}
      {{ $key }}: {{ $value | toString | quote }}
      {{- end }}
      {{- end }}
  spec:
    serviceAccountName: {{ include "cas.serviceAccountName" . }}
    automountServiceAccountToken: false
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.priorityClassName }}
    priorityClassName: {{ . }}
    {{- end }}
    terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
    securityContext:
      {{- toYaml .Values.podSecurityContext | nindent 6 }}
    containers:
      - name: cas
        image: {{ include "cas.image" . | quote }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        {{- if not $sgx }}
        args: ["--config", "/etc/custos-cas/cas.toml"]
        {{- end }}
        {{- if or .Values.externalAesmd.enabled .Values.extraEnv $postgres }}
        env:
          {{- if $postgres }}
          # The shared store: the URL holds the database password, so it stays in its Secret.
          - name: CUSTOS_CAS_STORE
            valueFrom:
              secretKeyRef:
                name: {{ .Values.store.postgres.existingSecret }}
                key: {{ .Values.store.postgres.urlKey }}
          {{- if not $sgx }}
          - name: CUSTOS_CAS_STORE_CA
            value: {{ printf "/etc/custos-cas/store-ca/%s" .Values.store.postgres.caKey | quote }}
          {{- end }}
          {{- end }}
          {{- if .Values.externalAesmd.enabled }}
          - name: SGX_AESM_ADDR
            value: "1"
          {{- end }}
          {{- with .Values.extraEnv }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        {{- end }}
        ports:
          - name: client-api
            containerPort: {{ int .Values.service.clientPort }}
            protocol: TCP
          - name: enclave-api
            containerPort: {{ int .Values.service.enclavePort }}
            protocol: TCP
        {{- if $postgres }}
        # /healthz answers 503 while the database is unreachable: that takes a replica out of
        # the Service (readiness), but must not restart every replica during a database outage.
        startupProbe:
          tcpSocket: {port: client-api}
          {{- toYaml .Values.probes.startup | nindent 10 }}
        livenessProbe:
          tcpSocket: {port: client-api}
          {{- toYaml .Values.probes.liveness | nindent 10 }}
        {{- else }}
        startupProbe:
          httpGet: {path: /healthz, port: client-api, scheme: HTTPS}
          {{- toYaml .Values.probes.startup | nindent 10 }}
        livenessProbe:
          httpGet: {path: /healthz, port: client-api, scheme: HTTPS}
          {{- toYaml .Values.probes.liveness | nindent 10 }}
        {{- end }}
        readinessProbe:
          httpGet: {path: /healthz, port: client-api, scheme: HTTPS}
          {{- toYaml .Values.probes.readiness | nindent 10 }}
        resources:
          {{- include "cas.resources" . | nindent 10 }}
        securityContext:
          {{- toYaml .Values.securityContext | nindent 10 }}
        volumeMounts:
          - name: data
            mountPath: /var/lib/custos-cas
          {{- if not $sgx }}
          - name: config
            mountPath: /etc/custos-cas/cas.toml
            subPath: cas.toml
            readOnly: true
          - name: master-key
            mountPath: /etc/custos-cas/master-key
            readOnly: true
          {{- end }}
          {{- if .Values.tls.existingSecret }}
          - name: tls
            mountPath: /etc/custos-cas/tls
            readOnly: true
          {{- end }}
          {{- if and $postgres (not $sgx) }}
          - name: store-ca
            mountPath: /etc/custos-cas/store-ca
            readOnly: true
          {{- end }}
          {{- if .Values.config.azure.caConfigMap }}
          - name: azure-ca
            mountPath: /etc/custos-cas/azure-ca
            readOnly: true
          {{- end }}
          {{- if .Values.externalAesmd.enabled }}
          - name: aesmd
            mountPath: /var/run/aesmd
          {{- end }}
          - name: tmp
            mountPath: /tmp
    volumes:
      {{- if not $sgx }}
      - name: config
        configMap:
          name: {{ include "cas.fullname" . }}-config
      - name: master-key
        secret:
          secretName: {{ include "cas.masterKeySecret" . }}
          defaultMode: 0400
          items:
            - key: master.key
              path: master.key
      {{- end }}
      {{- if .Values.tls.existingSecret }}
      - name: tls
        secret:
          secretName: {{ .Values.tls.existingSecret }}
          defaultMode: 0400
      {{- end }}
      {{- if and $postgres (not $sgx) }}
      - name: store-ca
        secret:
          secretName: {{ .Values.store.postgres.caSecret }}
          items:
            - key: {{ .Values.store.postgres.caKey }}
              path: {{ .Values.store.postgres.caKey }}
      {{- end }}
      {{- if .Values.config.azure.caConfigMap }}
      - name: azure-ca
        configMap:
          name: {{ .Values.config.azure.caConfigMap }}
      {{- end }}
      {{- if .Values.externalAesmd.enabled }}
      - name: aesmd
        hostPath:
          path: {{ .Values.externalAesmd.path }}
          type: Directory
      {{- end }}
      - name: tmp
        emptyDir:
          medium: Memory
          sizeLimit: 16Mi
      {{- /* With the PostgreSQL store only the simulated platform key and the DCAP
      collateral cache are in the data directory, both remade at need: nothing to keep. */}}
      {{- if or $postgres (not .Values.persistence.enabled) }}
      - name: data
        emptyDir: {}
      {{- end }}
    {{- with .Values.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if .Values.affinity }}
    affinity:
      {{- toYaml .Values.affinity | nindent 6 }}
    {{- else if gt (int .Values.replicaCount) 1 }}
    # Replicas on different nodes when the cluster has them, so one node's loss leaves one up.
    affinity:
      podAntiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels:
                  {{- include "cas.selectorLabels" . | nindent 18 }}
    {{- end }}
    {{- with .Values.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
