package schemas

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Audit types of an access request, set by the approver.
const (
	AuditCommand          = "COMMAND_AUDIT"
	AuditCommandKeystroke = "COMMAND_KEYSTROKE_AUDIT"
)

// Grant is a message on topic opctl.grants.v1 (compacted, key = LoginID):
// the unique login user an approval created, bound to its access request.
// Collectors use grants to fill req_auth_id; agents use them to create and
// remove users. On the topic a grant is the payload of a signed envelope
// (package grants); its revocation is a signed grant with Revoked set and
// only LoginID required (a bare tombstone, being unsigned, is refused).
// Its JSON Schema is jsonschema/grant.schema.json.
type Grant struct {
	LoginID   string    `json:"loginid"`     // 32 hex digits, the login user
	ReqAuthID string    `json:"req_auth_id"` // the access request
	Resource  string    `json:"resource,omitempty"`
	Actions   []string  `json:"actions,omitempty"`
	AuditType string    `json:"audit_type,omitempty"` // AuditCommand or AuditCommandKeystroke
	Expires   time.Time `json:"expires,omitzero"`
	// Hosts are the resource's hosts the grant applies to (those of its
	// privileges' layers, narrowed to the request's sub-resources).
	Hosts []string `json:"hosts,omitempty"`
	// Privileges are the requested actions' effective privileges.
	Privileges *Privileges `json:"privileges,omitempty"`
	// Start is when the access begins (the approval, or the future
	// access time the request asked for).
	Start time.Time `json:"start,omitzero"`
	// SSHAuthorizedKeys are the operator's SSH public keys, one
	// authorized_keys line each ("ssh-ed25519 AAAA… comment"); an SSH
	// certificate principal is a line of its CA with options
	// (`cert-authority,principals="…" ssh-ed25519 AAAA…`). The host
	// agent writes them to the login user's ~/.ssh/authorized_keys.
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
	// Revoked makes the message the grant's revocation (the signed
	// tombstone of its key).
	Revoked bool `json:"revoked,omitempty"`
	// PublishSeq numbers the policy service's records of this key on
	// this topic (policy's publish_seqs table, inside the signed payload):
	// a consumer refuses a record whose number is below the last it
	// applied for the key, or equal to it with other content, as a replay
	// (grants.Seqs).
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// Validate checks the fields a consumer relies on.
func (g *Grant) Validate() error {
	if g.LoginID == "" {
		return fmt.Errorf("grant: loginid is empty")
	}
	if g.Revoked {
		return nil
	}
	if g.ReqAuthID == "" {
		return fmt.Errorf("grant %s: req_auth_id is empty", g.LoginID)
	}
	switch g.AuditType {
	case "", AuditCommand, AuditCommandKeystroke:
	default:
		return fmt.Errorf("grant %s: unknown audit_type %q", g.LoginID, g.AuditType)
	}
	if !g.Start.IsZero() && !g.Expires.IsZero() && !g.Expires.After(g.Start) {
		return fmt.Errorf("grant %s: expires %s is not after start %s", g.LoginID, g.Expires.Format(time.RFC3339), g.Start.Format(time.RFC3339))
	}
	for i, k := range g.SSHAuthorizedKeys {
		if strings.TrimSpace(k) == "" || strings.ContainsFunc(k, unicode.IsControl) {
			return fmt.Errorf("grant %s: ssh_authorized_keys[%d]: empty, or holds a control character (one key per line)", g.LoginID, i)
		}
	}
	if g.Privileges != nil {
		if err := g.Privileges.Validate(); err != nil {
			return fmt.Errorf("grant %s: %w", g.LoginID, err)
		}
	}
	return nil
}

// Keystrokes reports whether the grant asks for keystroke events too. An
// empty audit type means the strictest reading: keystrokes are recorded.
func (g *Grant) Keystrokes() bool { return g.AuditType != AuditCommand }
