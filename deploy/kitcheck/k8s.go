package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest as the summary reports it.
type Object struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Data is a ConfigMap's data.
	Data map[string]string `json:"data,omitempty"`
	// SecretKeys are a Secret's keys (not their values).
	SecretKeys []string `json:"secretKeys,omitempty"`
	// Containers are a Deployment's.
	Containers []Container `json:"containers,omitempty"`
}

// Container is what the tests check of a Deployment's container.
type Container struct {
	Name      string            `json:"name"`
	Args      []string          `json:"args"`
	Liveness  string            `json:"liveness"`  // HTTP path
	Readiness string            `json:"readiness"` // HTTP path
	Mounts    map[string]string `json:"mounts"`    // mount path -> volume source ("configMap/NAME", "secret/NAME")
	Env       []string          `json:"env"`       // names
	// ReadOnly are the mount paths mounted read-only.
	ReadOnly []string `json:"readOnly,omitempty"`
	// Modes are the file modes of the ConfigMap and Secret volumes'
	// files, by mount path (their defaultMode; 0644 when unset, as the
	// API server defaults it).
	Modes map[string]int32 `json:"modes,omitempty"`
}

// kinds maps apiVersion/kind to a new object of its type.
var kinds = map[string]func() any{
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// checkManifests decodes every document strictly into its type and
// cross-checks them; it returns the summary or every fault found.
func checkManifests(src []byte) ([]Object, error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	r := yamlutil.NewYAMLReader(bufioReader(src))
	var objs []any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading documents: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSONStrict(doc) // a repeated key is an error, as the API server's strict decoding makes it
		if err != nil {
			fail("document %d: %v", len(objs)+1, err)
			continue
		}
		var tm struct{ APIVersion, Kind string }
		if err := json.Unmarshal(j, &tm); err != nil {
			fail("document %d: %v", len(objs)+1, err)
			continue
		}
		mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			fail("document %d: kind %s/%s is not one the chart may render", len(objs)+1, tm.APIVersion, tm.Kind)
			continue
		}
		o := mk()
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(o); err != nil {
			fail("%s: %v", tm.Kind, err)
			continue
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 && len(errs) == 0 {
		return nil, errors.New("no objects")
	}
	configMaps, secrets := map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}
	names := map[string]bool{}
	for _, o := range objs {
		kind, name, lbls := meta(o)
		for _, e := range validation.IsDNS1123Subdomain(name) {
			fail("%s %q: name: %s", kind, name, e)
		}
		if names[kind+"/"+name] {
			fail("%s %q rendered twice", kind, name)
		}
		names[kind+"/"+name] = true
		for k, v := range lbls {
			for _, e := range validation.IsQualifiedName(k) {
				fail("%s %q: label %q: %s", kind, name, k, e)
			}
			for _, e := range validation.IsValidLabelValue(v) {
				fail("%s %q: label %q value %q: %s", kind, name, k, v, e)
			}
		}
		switch o := o.(type) {
		case *corev1.ConfigMap:
			configMaps[name] = o
			for k := range o.Data {
				for _, e := range validation.IsConfigMapKey(k) {
					fail("ConfigMap %q: key %q: %s", name, k, e)
				}
			}
		case *corev1.Secret:
			secrets[name] = o
		}
	}
	var summary []Object
	var podLabels []map[string]string
	for _, o := range objs {
		kind, name, _ := meta(o)
		so := Object{Kind: kind, Name: name}
		switch o := o.(type) {
		case *corev1.ConfigMap:
			so.Data = o.Data
		case *corev1.Secret:
			for k := range o.Data {
				so.SecretKeys = append(so.SecretKeys, k)
			}
			for k := range o.StringData {
				so.SecretKeys = append(so.SecretKeys, k)
			}
		case *appsv1.Deployment:
			cs, es := checkDeployment(o, configMaps, secrets)
			errs = append(errs, es...)
			so.Containers = cs
			podLabels = append(podLabels, o.Spec.Template.Labels)
		}
		summary = append(summary, so)
	}
	for _, o := range objs {
		pdb, ok := o.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		if pdb.Spec.Selector == nil || len(pdb.Spec.Selector.MatchLabels) == 0 {
			fail("PodDisruptionBudget %q: no selector", pdb.Name)
			continue
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			fail("PodDisruptionBudget %q: exactly one of minAvailable and maxUnavailable", pdb.Name)
		}
		if !selectsAny(pdb.Spec.Selector.MatchLabels, podLabels) {
			fail("PodDisruptionBudget %q: selector %v matches no Deployment's pods", pdb.Name, pdb.Spec.Selector.MatchLabels)
		}
	}
	for _, o := range objs {
		svc, ok := o.(*corev1.Service)
		if !ok {
			continue
		}
		if len(svc.Spec.Selector) == 0 {
			fail("Service %q: no selector", svc.Name)
			continue
		}
		if !selectsAny(svc.Spec.Selector, podLabels) {
			fail("Service %q: selector %v matches no Deployment's pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				fail("Service %q: port %d", svc.Name, p.Port)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return summary, nil
}

// selectsAny tells whether the selector matches the labels of any pods.
func selectsAny(selector map[string]string, pods []map[string]string) bool {
	sel := labels.SelectorFromSet(selector)
	for _, pl := range pods {
		if sel.Matches(labels.Set(pl)) {
			return true
		}
	}
	return false
}

// checkDeployment checks one Deployment: its selector selects its pods,
// every container has a name, an image, and HTTP probes on a port it
// declares, every mount a volume, every volume an object of the render
// (or one marked optional), every secretKeyRef a rendered Secret's key.
func checkDeployment(d *appsv1.Deployment, cms map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret) ([]Container, []error) {
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("Deployment %q: "+format, append([]any{d.Name}, a...)...))
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		fail("no selector")
	} else if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		fail("selector %v does not match the pod template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	volumes := map[string]string{}
	modes := map[string]int32{}
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			volumes[v.Name] = "configMap/" + v.ConfigMap.Name
			modes[v.Name] = defaultMode(v.ConfigMap.DefaultMode)
			if cms[v.ConfigMap.Name] == nil && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
				fail("volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			volumes[v.Name] = "secret/" + v.Secret.SecretName
			modes[v.Name] = defaultMode(v.Secret.DefaultMode)
		case v.EmptyDir != nil:
			volumes[v.Name] = "emptyDir"
		case v.PersistentVolumeClaim != nil:
			volumes[v.Name] = "pvc/" + v.PersistentVolumeClaim.ClaimName
		default:
			fail("volume %q: a source the chart does not use", v.Name)
		}
	}
	if len(pod.Containers) == 0 {
		fail("no containers")
	}
	for _, c := range pod.InitContainers {
		if c.Name == "" || c.Image == "" {
			fail("init container %q: name and image are required", c.Name)
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				fail("init container %q: mount %q of no volume", c.Name, m.Name)
			}
		}
	}
	var out []Container
	for _, c := range pod.Containers {
		sc := Container{Name: c.Name, Args: c.Args, Mounts: map[string]string{}}
		if c.Name == "" || c.Image == "" {
			fail("container %q: name and image are required", c.Name)
		}
		for _, e := range validation.IsDNS1123Label(c.Name) {
			fail("container %q: %s", c.Name, e)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
			ports[fmt.Sprint(p.ContainerPort)] = true
		}
		probe := func(what string, p *corev1.Probe) string {
			if p == nil || p.HTTPGet == nil {
				fail("container %q: no HTTP %s probe", c.Name, what)
				return ""
			}
			if !ports[p.HTTPGet.Port.String()] {
				fail("container %q: %s probe on port %s, which it does not declare", c.Name, what, p.HTTPGet.Port.String())
			}
			return p.HTTPGet.Path
		}
		sc.Liveness = probe("liveness", c.LivenessProbe)
		sc.Readiness = probe("readiness", c.ReadinessProbe)
		for _, m := range c.VolumeMounts {
			src, ok := volumes[m.Name]
			if !ok {
				fail("container %q: mount %q of no volume", c.Name, m.Name)
			}
			sc.Mounts[m.MountPath] = src
			if m.ReadOnly {
				sc.ReadOnly = append(sc.ReadOnly, m.MountPath)
			}
			if mode, ok := modes[m.Name]; ok {
				if sc.Modes == nil {
					sc.Modes = map[string]int32{}
				}
				sc.Modes[m.MountPath] = mode
			}
		}
		for _, e := range c.Env {
			sc.Env = append(sc.Env, e.Name)
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			if s := secrets[ref.Name]; s != nil {
				_, inData := s.Data[ref.Key]
				_, inString := s.StringData[ref.Key]
				if !inData && !inString {
					fail("container %q: env %s: Secret %q has no key %q", c.Name, e.Name, ref.Name, ref.Key)
				}
			}
		}
		if c.SecurityContext == nil || c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot {
			fail("container %q: runAsNonRoot is not set", c.Name)
		}
		out = append(out, sc)
	}
	return out, errs
}

// defaultMode is a volume's defaultMode as the API server defaults it.
func defaultMode(m *int32) int32 {
	if m == nil {
		return corev1.ConfigMapVolumeSourceDefaultMode
	}
	return *m
}

func meta(o any) (kind, name string, lbls map[string]string) {
	switch o := o.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap", o.Name, o.Labels
	case *corev1.Secret:
		return "Secret", o.Name, o.Labels
	case *corev1.Service:
		return "Service", o.Name, o.Labels
	case *corev1.ServiceAccount:
		return "ServiceAccount", o.Name, o.Labels
	case *appsv1.Deployment:
		return "Deployment", o.Name, o.Labels
	case *policyv1.PodDisruptionBudget:
		return "PodDisruptionBudget", o.Name, o.Labels
	}
	return fmt.Sprintf("%T", o), "", nil
}

// stripComments drops comment lines (helm template's "# Source: …").
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
