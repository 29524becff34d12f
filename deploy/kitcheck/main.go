// Command kitcheck checks the operator's kit with the libraries of the
// tools that read it, where the tools themselves cannot run here: the
// Kubernetes manifests that `helm template` renders from
// deploy/helm/auditpipe, decoded strictly into the k8s.io/api types of
// their kind (an unknown or misspelt field, a wrong type, an unknown kind
// is an error) and cross-checked (selectors, ports, volumes, ConfigMap and
// Secret references); and the compose file in deploy/compose, loaded and
// validated against the Compose Specification's schema by compose-go, the
// loader of `docker compose` (no Docker engine runs here).
//
// It is a module of its own so that neither k8s.io nor compose-go enters
// auditpipe's go.mod or binary. The deploy tests build and run it:
//
//	kitcheck k8s FILE       multi-document YAML (helm template's output)
//	kitcheck compose FILE   a compose file
//
// Each prints a JSON summary on stdout for the tests to check further
// (ConfigMap contents, probe paths, mounted files), or exits 1 with every
// fault found on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kitcheck:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: kitcheck k8s|compose FILE")
	}
	var summary any
	var err error
	switch args[0] {
	case "k8s":
		var b []byte
		b, err = os.ReadFile(args[1])
		if err != nil {
			return err
		}
		summary, err = checkManifests(b)
	case "compose":
		summary, err = checkCompose(context.Background(), args[1])
	default:
		return fmt.Errorf("unknown check %q", args[0])
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(summary)
}
