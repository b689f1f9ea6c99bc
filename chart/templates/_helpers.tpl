{{/*
Names. Every object name derives from the release name R (docs/architecture.md):
StatefulSet/Service R, Secrets R-certs and vc-R, ConfigMaps R-coredns and R-admission,
ServiceAccounts vc-R and vc-workload-R, Role/RoleBinding vc-R,
ClusterRole/ClusterRoleBinding vc-R-N.
*/}}

{{/* Chart name, the value of app.kubernetes.io/name. */}}
{{- define "vcluster.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: the release name itself. A StatefulSet's pods carry the label
controller-revision-hash=<name>-<10 chars>, which must fit in 63 characters.
*/}}
{{- define "vcluster.fullname" -}}
{{- if gt (len .Release.Name) 52 -}}
{{- fail (printf "release name %q is %d characters long; at most 52 are allowed (StatefulSet name limit)" .Release.Name (len .Release.Name)) -}}
{{- end -}}
{{- .Release.Name -}}
{{- end -}}

{{- define "vcluster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ServiceAccount, Role and RoleBinding of the syncer; also the kubeconfig Secret. */}}
{{- define "vcluster.syncerName" -}}
{{- printf "vc-%s" (include "vcluster.fullname" .) -}}
{{- end -}}

{{- define "vcluster.kubeconfigSecretName" -}}
{{- printf "vc-%s" (include "vcluster.fullname" .) -}}
{{- end -}}

{{/* ServiceAccount every synced pod runs as. */}}
{{- define "vcluster.workloadServiceAccountName" -}}
{{- printf "vc-workload-%s" (include "vcluster.fullname" .) -}}
{{- end -}}

{{/* Secret with the PKI, the admin token and the controller-manager kubeconfig. */}}
{{- define "vcluster.certsSecretName" -}}
{{- printf "%s-certs" (include "vcluster.fullname" .) -}}
{{- end -}}

{{/* ConfigMap with the Corefile of container coredns (coredns.enabled). */}}
{{- define "vcluster.corednsName" -}}
{{- printf "%s-coredns" (include "vcluster.fullname" .) -}}
{{- end -}}

{{/* ConfigMap with kube-apiserver's AdmissionConfiguration (podSecurity baseline or restricted). */}}
{{- define "vcluster.admissionConfigName" -}}
{{- printf "%s-admission" (include "vcluster.fullname" .) -}}
{{- end -}}

{{/*
kube-apiserver's AdmissionConfiguration for .Values.podSecurity, or "" for privileged (the PodSecurity
admission plugin's own default: no file, no flag). Every mode (enforce, warn, audit) at the chosen level,
version latest, no exemptions (no pod of the virtual cluster needs one: CoreDNS is a container of R-0).
*/}}
{{- define "vcluster.admissionConfig" -}}
{{- $level := .Values.podSecurity -}}
{{- if ne $level "privileged" -}}
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        {{- range list "enforce" "warn" "audit" }}
        {{ . }}: {{ $level | quote }}
        {{ . }}-version: "latest"
        {{- end }}
      exemptions:
        usernames: []
        runtimeClasses: []
        namespaces: []
{{- end -}}
{{- end -}}

{{/* ClusterRole and ClusterRoleBinding, only when an option needs host-wide reads. */}}
{{- define "vcluster.clusterRoleName" -}}
{{- printf "vc-%s-%s" (include "vcluster.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* "true" when some value needs cluster-scoped rights on the host, else "". */}}
{{- define "vcluster.needsClusterRole" -}}
{{- if or (eq .Values.sync.fromHost.nodes.mode "all") .Values.sync.fromHost.storageClasses.enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
Labels. Selector labels are immutable on the StatefulSet: never add to them.
*/}}
{{- define "vcluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vcluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{/*
Common labels; call with (dict "ctx" $ "component" "NAME").
*/}}
{{- define "vcluster.labels" -}}
{{- $ctx := .ctx -}}
helm.sh/chart: {{ include "vcluster.chart" $ctx }}
app.kubernetes.io/name: {{ include "vcluster.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of cluster-scoped objects: findable by release and host namespace. */}}
{{- define "vcluster.clusterLabels" -}}
{{ include "vcluster.labels" . }}
vcluster.pytest-vcluster.io/host-namespace: {{ .ctx.Release.Namespace }}
{{- end -}}

{{/*
"true" when the version of an image tag is at least .min ("1.37", "3.6"), else "": flags that differ between
versions follow the image that runs them. Call with (dict "tag" TAG "min" "1.37" "key" "kubernetes" "ctx" $).
A tag that is no version (a custom build named "dev") counts as the tag of the default minor of
kubernetes-versions.yaml (.key: its "kubernetes" or its "etcd").
*/}}
{{- define "vcluster.atLeast" -}}
{{- $version := regexFind `^v?[0-9]+\.[0-9]+(\.[0-9]+)?` (toString .tag) -}}
{{- if not $version -}}
{{- $table := .ctx.Files.Get "kubernetes-versions.yaml" | fromYaml -}}
{{- $version = index (index $table.versions $table.default) .key -}}
{{- end -}}
{{- if semverCompare (printf ">=%s.0-0" .min) $version }}true{{ end -}}
{{- end -}}

{{/* "repository:tag" of an image block; call with (dict "image" .Values.x.image "ctx" $). */}}
{{- define "vcluster.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/*
A random address in the dynamically allocated part of .Values.serviceCIDR.
Kubernetes keeps the first min(max(16, size/16), 256) addresses of the range
for static assignment (ServiceIPStaticSubrange) and hands out the rest at
random; picking from the rest at random makes a clash with an existing
Service about as unlikely as two dynamic allocations colliding.
*/}}
{{- define "vcluster.randomServiceIP" -}}
{{- $parts := splitList "/" .Values.serviceCIDR -}}
{{- $octets := splitList "." (index $parts 0) -}}
{{- $prefix := atoi (index $parts 1) -}}
{{- $size := 1 -}}
{{- range until (sub 32 $prefix | int) -}}
{{- $size = mul $size 2 -}}
{{- end -}}
{{- $addr := add (mul (atoi (index $octets 0)) 16777216) (mul (atoi (index $octets 1)) 65536) (mul (atoi (index $octets 2)) 256) (atoi (index $octets 3)) -}}
{{- $base := sub $addr (mod $addr $size) -}}
{{- $reserved := 0 -}}
{{- if ge $size 16 -}}
{{- $reserved = min (max 16 (div $size 16)) 256 -}}
{{- end -}}
{{- /* offsets 0 (network) and size-1 (broadcast) are never used */ -}}
{{- $lo := add $reserved 1 -}}
{{- if gt $lo (sub $size 2) -}}
{{- $lo = 1 -}}
{{- end -}}
{{- $ip := add $base (randInt ($lo | int) (sub $size 1 | int)) -}}
{{- printf "%d.%d.%d.%d" (div $ip 16777216) (mod (div $ip 65536) 256) (mod (div $ip 256) 256) (mod $ip 256) -}}
{{- end -}}

{{/*
Cluster PKI, admin token and Service IP, as JSON:
  {"clusterIP", "caCrt", "caKey", "apiserverCrt", "apiserverKey", "saKey", "token", "sansHash",
   "kubeletCrt", "kubeletKey", "frontProxyCaCrt", "frontProxyClientCrt", "frontProxyClientKey"}
Certificates and keys are base64-encoded PEM (Secret data form), token is plain.

Computed once per render (memoised in the root context) so that every template
sees the same random values. Kept across `helm upgrade`: when Secret R-certs
exists its CA, service-account key and token are reused; the serving
certificate is re-signed (by the same CA) only when its list of names/IPs
changed, which the Secret records in an annotation. The Service IP is read
back from Service R when it exists (it is immutable anyway).
*/}}
{{- define "vcluster.pki" -}}
{{- if not (hasKey . "_vclusterPki") -}}
{{- $name := include "vcluster.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
{{- /* Service IP */ -}}
{{- $svc := lookup "v1" "Service" $ns $name | default dict -}}
{{- $clusterIP := "" -}}
{{- if and $svc.spec $svc.spec.clusterIP (ne $svc.spec.clusterIP "None") -}}
{{- $clusterIP = $svc.spec.clusterIP -}}
{{- else if .Values.service.clusterIP -}}
{{- $clusterIP = .Values.service.clusterIP -}}
{{- else -}}
{{- $clusterIP = include "vcluster.randomServiceIP" . -}}
{{- end -}}
{{- /* names in the serving certificate */ -}}
{{- $ips := list "127.0.0.1" $clusterIP | uniq -}}
{{- $dns := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) (printf "%s.%s.svc.%s" $name $ns $domain) "localhost" "kubernetes" "kubernetes.default" "kubernetes.default.svc" (printf "kubernetes.default.svc.%s" $domain) | uniq -}}
{{- $sansHash := printf "%s|%s" (join "," $ips) (join "," $dns) | sha256sum | trunc 16 -}}
{{- /* existing Secret */ -}}
{{- $old := lookup "v1" "Secret" $ns (include "vcluster.certsSecretName" .) | default dict -}}
{{- $data := $old.data | default dict -}}
{{- $oldMeta := $old.metadata | default dict -}}
{{- $oldAnnotations := $oldMeta.annotations | default dict -}}
{{- $pki := dict "clusterIP" $clusterIP "sansHash" $sansHash -}}
{{- $complete := true -}}
{{- range list "ca.crt" "ca.key" "apiserver.crt" "apiserver.key" "sa.key" "token" -}}
{{- if not (index $data .) -}}
{{- $complete = false -}}
{{- end -}}
{{- end -}}
{{- if $complete -}}
{{- $_ := set $pki "caCrt" (index $data "ca.crt") -}}
{{- $_ := set $pki "caKey" (index $data "ca.key") -}}
{{- $_ := set $pki "saKey" (index $data "sa.key") -}}
{{- $_ := set $pki "token" (index $data "token" | b64dec) -}}
{{- if eq (index $oldAnnotations "vcluster.pytest-vcluster.io/serving-cert-sans" | default "") $sansHash -}}
{{- $_ := set $pki "apiserverCrt" (index $data "apiserver.crt") -}}
{{- $_ := set $pki "apiserverKey" (index $data "apiserver.key") -}}
{{- else -}}
{{- $ca := buildCustomCert (index $data "ca.crt") (index $data "ca.key") -}}
{{- $cert := genSignedCertWithKey "kube-apiserver" $ips $dns 3650 $ca (genPrivateKey "ecdsa") -}}
{{- $_ := set $pki "apiserverCrt" ($cert.Cert | b64enc) -}}
{{- $_ := set $pki "apiserverKey" ($cert.Key | b64enc) -}}
{{- end -}}
{{- else -}}
{{- $ca := genCAWithKey (printf "vcluster-%s-ca" $name) 3650 (genPrivateKey "ecdsa") -}}
{{- $cert := genSignedCertWithKey "kube-apiserver" $ips $dns 3650 $ca (genPrivateKey "ecdsa") -}}
{{- $_ := set $pki "caCrt" ($ca.Cert | b64enc) -}}
{{- $_ := set $pki "caKey" ($ca.Key | b64enc) -}}
{{- $_ := set $pki "apiserverCrt" ($cert.Cert | b64enc) -}}
{{- $_ := set $pki "apiserverKey" ($cert.Key | b64enc) -}}
{{- $_ := set $pki "saKey" (genPrivateKey "ecdsa" | b64enc) -}}
{{- $_ := set $pki "token" (randAlphaNum 48) -}}
{{- end -}}
{{- /* the syncer's fake kubelet (on 127.0.0.1, at the port the syncer defaults to: contract KUBELET_PORT; the API server does not verify it): kept when present */ -}}
{{- if and (index $data "kubelet.crt") (index $data "kubelet.key") -}}
{{- $_ := set $pki "kubeletCrt" (index $data "kubelet.crt") -}}
{{- $_ := set $pki "kubeletKey" (index $data "kubelet.key") -}}
{{- else -}}
{{- $kubelet := genSelfSignedCertWithKey "vcluster-syncer-kubelet" (list "127.0.0.1") (list "localhost") 3650 (genPrivateKey "ecdsa") -}}
{{- $_ := set $pki "kubeletCrt" ($kubelet.Cert | b64enc) -}}
{{- $_ := set $pki "kubeletKey" ($kubelet.Key | b64enc) -}}
{{- end -}}
{{- /*
front-proxy (the aggregation layer, as kubeadm sets it up): kube-apiserver proxies to aggregated API servers
(APIServices backed by a Service) with the client certificate CN=front-proxy-client, signed by a CA of its own
that it publishes in kube-system/extension-apiserver-authentication (requestheader-client-ca-file). Kept when
present; a Secret from an older chart without them gets them once, the rest of its PKI untouched. The CA's key
is not stored: nothing signs with it after this render (kubeadm keeps it only to renew the certificate with
`kubeadm certs renew`; a new pair here replaces both).
*/ -}}
{{- if and (index $data "front-proxy-ca.crt") (index $data "front-proxy-client.crt") (index $data "front-proxy-client.key") -}}
{{- $_ := set $pki "frontProxyCaCrt" (index $data "front-proxy-ca.crt") -}}
{{- $_ := set $pki "frontProxyClientCrt" (index $data "front-proxy-client.crt") -}}
{{- $_ := set $pki "frontProxyClientKey" (index $data "front-proxy-client.key") -}}
{{- else -}}
{{- $fpCa := genCAWithKey (printf "vcluster-%s-front-proxy-ca" $name) 3650 (genPrivateKey "ecdsa") -}}
{{- $fpClient := genSignedCertWithKey "front-proxy-client" nil nil 3650 $fpCa (genPrivateKey "ecdsa") -}}
{{- $_ := set $pki "frontProxyCaCrt" ($fpCa.Cert | b64enc) -}}
{{- $_ := set $pki "frontProxyClientCrt" ($fpClient.Cert | b64enc) -}}
{{- $_ := set $pki "frontProxyClientKey" ($fpClient.Key | b64enc) -}}
{{- end -}}
{{- $_ := set . "_vclusterPki" $pki -}}
{{- end -}}
{{- get . "_vclusterPki" | toJson -}}
{{- end -}}

{{/*
A kubeconfig with a bearer token; call with
(dict "name" NAME "server" URL "ca" BASE64_PEM "token" TOKEN).
*/}}
{{- define "vcluster.kubeconfig" -}}
apiVersion: v1
kind: Config
clusters:
  - name: {{ .name }}
    cluster:
      server: {{ .server }}
      certificate-authority-data: {{ .ca }}
users:
  - name: {{ .name }}
    user:
      token: {{ .token }}
contexts:
  - name: {{ .name }}
    context:
      cluster: {{ .name }}
      user: {{ .name }}
      namespace: default
current-context: {{ .name }}
preferences: {}
{{- end -}}
