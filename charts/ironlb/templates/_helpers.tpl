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

{{- define "ironlb.cleanupName" -}}
{{- printf "%s-cleanup" (include "ironlb.fullname" .) }}
{{- end }}

{{/* ServiceAccount names: the given one, else the component's own name. */}}
{{- define "ironlb.controllerServiceAccount" -}}
{{- default (include "ironlb.controllerName" .) .Values.controller.serviceAccount.name }}
{{- end }}

{{- define "ironlb.speakerServiceAccount" -}}
{{- default (include "ironlb.speakerName" .) .Values.speaker.serviceAccount.name }}
{{- end }}

{{- define "ironlb.cleanupServiceAccount" -}}
{{- default (include "ironlb.cleanupName" .) .Values.cleanup.serviceAccount.name }}
{{- end }}

{{/* True (non-empty) when the controller creates and keeps the heartbeat Secret. */}}
{{- define "ironlb.heartbeatSecretGenerated" -}}
{{- if and (gt (int .Values.speaker.heartbeat.port) 0) (not .Values.speaker.heartbeat.existingSecret) }}true{{- end }}
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
