package pkgmgr

import (
	"encoding/json"
	"fmt"
	"io"
)

// Tracker is the Debian security tracker's JSON feed
// (https://security-tracker.debian.org/tracker/data/json): source package
// → CVE id → the CVE's state per release. Only the fields the adapter
// reads are decoded.
type Tracker map[string]map[string]TrackerCVE

// TrackerCVE is one CVE of a source package.
type TrackerCVE struct {
	Description string                    `json:"description"`
	Releases    map[string]TrackerRelease `json:"releases"`
}

// TrackerRelease is a CVE's state in one release ("bookworm"): status
// "resolved" with the fixed_version, or "open", "undetermined".
type TrackerRelease struct {
	Status       string `json:"status"`
	FixedVersion string `json:"fixed_version"`
	Urgency      string `json:"urgency"`
}

// ReadTracker decodes a security tracker feed.
func ReadTracker(r io.Reader) (Tracker, error) {
	var t Tracker
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return nil, fmt.Errorf("pkgmgr: read the security tracker feed: %w", err)
	}
	return t, nil
}

// Fix is a CVE fixed in a release at a version.
type Fix struct {
	CVE          string
	FixedVersion string
}

// Fixes returns the CVEs of source package src resolved in release, with
// the version that fixed each; open and undetermined CVEs have no fix.
func (t Tracker) Fixes(src, release string) []Fix {
	var out []Fix
	for id, c := range t[src] {
		r, ok := c.Releases[release]
		if !ok || r.Status != "resolved" || r.FixedVersion == "" || r.FixedVersion == "0" {
			continue
		}
		out = append(out, Fix{CVE: id, FixedVersion: r.FixedVersion})
	}
	return out
}
