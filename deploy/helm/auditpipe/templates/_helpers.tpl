{{/* The release's full name, at most 63 characters. */}}
{{- define "auditpipe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "auditpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component's pods; call with (list $ NAME). */}}
{{- define "auditpipe.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The Secret's name. */}}
{{- define "auditpipe.secretName" -}}
{{- if .Values.secrets.create -}}
{{ include "auditpipe.fullname" . }}
{{- else -}}
{{ required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "auditpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "auditpipe.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/*
One component's configuration file, in auditpipe's format; call with
(list $ NAME COMPONENT). The chart's part (target, listen address, tokens
file, Kafka credentials' paths) is merged under common, under the
component's own config (each later one wins).
*/}}
{{- define "auditpipe.config" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $c := index . 2 -}}
{{- $kafka := dict "sasl" (dict "username" $c.kafkaUser "password_file" (printf "/etc/auditpipe/secrets/kafka-%s.password" $c.kafkaUser)) -}}
{{- if $root.Values.common.kafka.tls.enabled -}}
{{- $_ := set $kafka "tls" (dict "ca_file" "/etc/auditpipe/secrets/kafka-ca.pem") -}}
{{- end -}}
{{- $base := dict "target" $name "server" (dict "http_addr" (printf "0.0.0.0:%v" $c.port) "auth" (dict "tokens_file" "/etc/auditpipe/secrets/tokens.yaml")) "kafka" $kafka -}}
{{- if include "auditpipe.verifiesHosts" $name -}}
{{- $_ := set $base "host_keys" (dict "dir" "/etc/auditpipe/host-keys") -}}
{{- end -}}
{{- $cfg := mustMergeOverwrite (deepCopy $root.Values.common) $base (deepCopy $c.config) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
The Secret's keys one component mounts; call with (list $ NAME COMPONENT).
*/}}
{{- define "auditpipe.secretKeys" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $c := index . 2 -}}
{{- $keys := list "tokens.yaml" (printf "kafka-%s.password" $c.kafkaUser) -}}
{{- if $root.Values.common.kafka.tls.enabled -}}{{- $keys = append $keys "kafka-ca.pem" -}}{{- end -}}
{{- if eq $name "forwarder" -}}{{- $keys = append $keys "siem-ca.pem" -}}{{- end -}}
{{- if or (eq $name "policy") (eq $name "scheduler") -}}{{- $keys = append $keys "policy.key" -}}{{- end -}}
{{- toJson $keys -}}
{{- end -}}


{{/* The ConfigMap of the enrolled host keys. */}}
{{- define "auditpipe.hostKeysName" -}}
{{- printf "%s-host-keys" (include "auditpipe.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
"true" when the component verifies the host agents' messages against
their enrolled keys (host_keys.dir), else empty; call with its NAME.
*/}}
{{- define "auditpipe.verifiesHosts" -}}
{{- if has . (list "indexer" "policy" "scheduler") -}}true{{- end -}}
{{- end -}}
