{{/* The chart name, shortened to fit label values. */}}
{{- define "ironlb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
Base name of the release's objects. Suffixes such as "-controller" are appended, so it is
kept at 40 characters to leave room within the 63 a label value allows.
*/}}
{{- define "ironlb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ironlb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ironlb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ironlb
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "controller"). */}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ironlb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ironlb.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}

{{- define "ironlb.controllerName" -}}
{{- printf "%s-controller" (include "ironlb.fullname" .) }}
{{- end }}

{{- define "ironlb.speakerName" -}}
{{- printf "%s-speaker" (include "ironlb.fullname" .) }}
{{- end }}

{{- define "ironlb.heartbeatSecretName" -}}
{{- default (printf "%s-heartbeat" (include "ironlb.fullname" .)) .Values.speaker.heartbeat.existingSecret }}
{{- end }}

{{- define "ironlb.heartbeatSecretKey" -}}
{{- if .Values.speaker.heartbeat.existingSecret }}
{{- .Values.speaker.heartbeat.existingSecretKey }}
{{- else }}
{{- "secret" }}
{{- end }}
{{- end }}

{{/*
Container securityContext shared by both components: nothing beyond what each needs.
The speaker adds NET_RAW (packet sockets for ARP/NDP) on top of this.
*/}}
{{- define "ironlb.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The generated heartbeat key, base64: the one already in the cluster if there is one (so
upgrades keep it), else a new random one. Both the Secret and the speaker's checksum
annotation use it, so the first value is remembered for the rest of this render.
*/}}
{{- define "ironlb.heartbeatSecretValue" -}}
{{- $memo := .Values.speaker.heartbeat }}
{{- if not (hasKey $memo "__generated") }}
{{- $value := "" }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "ironlb.heartbeatSecretName" .) }}
{{- if and $existing $existing.data }}
{{- $value = index $existing.data "secret" | default "" }}
{{- end }}
{{- if not $value }}
{{- $value = randAlphaNum 32 | b64enc }}
{{- end }}
{{- $_ := set $memo "__generated" $value }}
{{- end }}
{{- index $memo "__generated" }}
{{- end }}
