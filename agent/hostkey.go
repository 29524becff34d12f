package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/auditpipe/auditpipe/internal/sign"
)

// hostKey loads the host's signing key, agent.key_file, creating it at
// the first start (0600, its directory 0700 when missing, the public key
// beside it as key_file.pub): the agent's identity on opctl.agent.v1,
// which the control plane trusts once an administrator enrolled the
// public key for this host.
func hostKey(cfg Config, log *slog.Logger) (*sign.Signer, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.KeyFile), 0o700); err != nil {
		return nil, fmt.Errorf("agent.key_file: %w", err)
	}
	s, created, err := sign.EnsureKeyPair(cfg.KeyFile, cfg.KeyFile+".pub")
	if err != nil {
		return nil, fmt.Errorf("agent.key_file: %w", err)
	}
	if created {
		log.Warn("first start: this host's signing key was created; until it is enrolled, the control plane refuses this agent's reports (unknown_host)",
			"host", cfg.Host, "key", cfg.KeyFile, "key_id", s.KeyID(),
			"enroll", "auditpipe agent enroll --host "+cfg.Host+" --key "+cfg.KeyFile+".pub --dir <host_keys.dir of the policy, scheduler and indexer>")
	} else {
		log.Info("signing reports with this host's key", "host", cfg.Host, "key_id", s.KeyID())
	}
	return s, nil
}
