{{- define "kpilot.name" -}}kpilot{{- end -}}

{{- define "kpilot.fullname" -}}
{{- if contains "kpilot" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-kpilot" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "kpilot.labels" -}}
app.kubernetes.io/name: kpilot
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kpilot.selector" -}}
app.kubernetes.io/name: kpilot
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kpilot.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "kpilot.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The namespaced rules, with Secrets limited to .Values.secretNames when set. */}}
{{- define "kpilot.namespacedRules" -}}
{{- $rules := .Files.Get "files/rules-namespaced.yaml" | fromYamlArray -}}
{{- range $rules }}
{{- if and (has "secrets" .resources) $.Values.secretNames }}
{{- $_ := set . "resourceNames" $.Values.secretNames }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end -}}
