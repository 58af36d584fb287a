{{/* The chart's name, overridable with nameOverride. */}}
{{- define "wasmoci.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A release-qualified name; the release's name alone when it already holds the chart's name. */}}
{{- define "wasmoci.fullname" -}}
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

{{/* The installer's name: `wasmoci-node-installer` for a release named wasmoci. */}}
{{- define "wasmoci.installerName" -}}
{{- printf "%s-node-installer" (include "wasmoci.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wasmoci.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/part-of: {{ include "wasmoci.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The installer's labels: the common ones and its name. */}}
{{- define "wasmoci.installerLabels" -}}
{{ include "wasmoci.labels" . }}
app.kubernetes.io/name: {{ include "wasmoci.name" . }}-node-installer
{{- end }}

{{/* Selector labels: never change them in an upgrade (a DaemonSet's selector is immutable). */}}
{{- define "wasmoci.installerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmoci.name" . }}-node-installer
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wasmoci.installerImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* A host path under the installer's `/host`. Refuses a relative path, and characters
the shell script would have to quote. */}}
{{- define "wasmoci.hostPath" -}}
{{- if not (regexMatch "^/[-A-Za-z0-9._/]*$" .) }}
{{- fail (printf "containerdConfig and shimDir must be absolute paths of letters, digits and -._/; got %q" .) }}
{{- end }}
{{- printf "/host%s" (trimSuffix "/" .) }}
{{- end }}
