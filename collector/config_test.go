package collector

import (
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/config"
)

// TestConfigSizesAndEveryError: byte fields take human sizes, and Validate
// reports every bad field at once, each by its path.
func TestConfigSizesAndEveryError(t *testing.T) {
	cfg := DefaultConfig()
	in := "spool_max_bytes: 2GiB\nbatch_max_bytes: 0\ninput: {max_line_bytes: 512}\nmax_event_bytes: 1MiB\nlayer: MOON\nflush_interval: 0s\n"
	if err := config.Decode([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.SpoolMaxBytes != 2<<30 {
		t.Errorf("spool_max_bytes = %d, want 2GiB", cfg.SpoolMaxBytes)
	}
	err := cfg.Validate()
	want := `collector.batch_max_bytes: 0B must be positive
collector.flush_interval: 0s must be positive
collector.grant_keys: required while collector.follow_grants is on: the public keys whose grants are trusted (unsigned grants are never trusted); or set follow_grants: false to use the static grants only
collector.input.max_line_bytes: 512B is below 1KiB
collector.layer: "MOON" is not one of CPS, HOST, CELL, GUESTVM, SWITCH, ILOM
collector.max_event_bytes: 1MiB is outside 64KiB..983616B`
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant\n%s", err, want)
	}
	// The defaults follow the grants topic: they need the keys to trust,
	// and nothing else.
	def := DefaultConfig()
	if err := def.Validate(); err == nil || !strings.HasPrefix(err.Error(), "collector.grant_keys: required") || strings.Contains(err.Error(), "\n") {
		t.Errorf("the defaults without grant keys: %v, want only collector.grant_keys named", err)
	}
	_, pub := grantKey(t, t.TempDir())
	def.GrantKeys = []string{pub}
	if err := def.Validate(); err != nil {
		t.Errorf("the defaults with a grant key do not validate: %v", err)
	}
}
