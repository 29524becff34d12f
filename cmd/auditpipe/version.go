package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// cmdVersion prints the module version and the VCS revision the binary was
// built from.
func cmdVersion(_ context.Context, e env) error {
	fmt.Fprintln(e.stdout, versionString())
	return nil
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "auditpipe (unknown version)"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return fmt.Sprintf("auditpipe %s (%s)", v, bi.GoVersion)
	}
	return fmt.Sprintf("auditpipe %s (revision %s%s, %s)", v, rev, modified, bi.GoVersion)
}
