{{- define "hello-web.labels" -}}
app.kubernetes.io/name: hello-web
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
