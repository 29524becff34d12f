package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

// Service is what the tests check of a compose service.
type Service struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// Command is the service's command (after interpolation).
	Command []string `json:"command,omitempty"`
	// Binds maps a mount's target to its absolute source on the host.
	Binds map[string]string `json:"binds,omitempty"`
	// Volumes maps a named volume's mount target to the volume's name.
	Volumes map[string]string `json:"volumes,omitempty"`
	// DependsOn names the services it waits for.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Healthcheck is the health check's test command.
	Healthcheck []string `json:"healthcheck,omitempty"`
	// User is the user the container runs as ("" when the image's).
	User string `json:"user,omitempty"`
	// Environment is the container's environment (after interpolation).
	Environment map[string]string `json:"environment,omitempty"`
}

// checkCompose loads a compose file as `docker compose config` does:
// schema validation, interpolation, path resolution, consistency
// (references to services, networks, volumes that exist).
func checkCompose(ctx context.Context, file string) ([]Service, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithName("auditpipe"))
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	var out []Service
	for name, s := range p.Services {
		o := Service{Name: name, Image: s.Image, Command: s.Command, Binds: map[string]string{}, Volumes: map[string]string{}, User: s.User}
		for k, v := range s.Environment {
			if v != nil {
				if o.Environment == nil {
					o.Environment = map[string]string{}
				}
				o.Environment[k] = *v
			}
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case "bind":
				o.Binds[v.Target] = v.Source
			case "volume":
				o.Volumes[v.Target] = v.Source
			}
		}
		for d := range s.DependsOn {
			o.DependsOn = append(o.DependsOn, d)
		}
		sort.Strings(o.DependsOn)
		if s.HealthCheck != nil {
			o.Healthcheck = s.HealthCheck.Test
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
