package kafka

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/auditpipe/auditpipe/internal/config"
)

// The SASL mechanisms a client can use.
const (
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismPlain       = "PLAIN"
)

// SASLConfig is how a client authenticates to the brokers. Default: not
// at all (no username).
type SASLConfig struct {
	// Mechanism is SCRAM-SHA-512, SCRAM-SHA-256, or PLAIN (which sends
	// the password itself: refused unless tls.enabled). Default
	// SCRAM-SHA-512 when a username is set.
	Mechanism string `yaml:"mechanism"`
	// Username is the Kafka principal (User:<username> in ACLs). Empty
	// turns SASL off. Default "".
	Username string `yaml:"username"`
	// Password of the user. Never logged. Default "".
	Password config.Secret `yaml:"password"`
	// PasswordFile holds the password instead (its first line; it should be
	// readable by the owner only), read each time a connection is set up,
	// so a rotated password is used without a restart. Default "".
	PasswordFile string `yaml:"password_file"`
}

// Enabled reports whether the client authenticates with SASL.
func (c SASLConfig) Enabled() bool { return c.Username != "" }

func (c SASLConfig) withDefaults() SASLConfig {
	if c.Enabled() && c.Mechanism == "" {
		c.Mechanism = MechanismSCRAMSHA512
	}
	return c
}

// validate names the bad field; tls is whether the connection is
// encrypted.
func (c SASLConfig) validate(prefix string, tls bool) error {
	c = c.withDefaults()
	if !c.Enabled() {
		if c.Password != "" || c.PasswordFile != "" {
			return fmt.Errorf("%s.username: required when a password is set", prefix)
		}
		if c.Mechanism != "" {
			return fmt.Errorf("%s.username: required when a mechanism is set", prefix)
		}
		return nil
	}
	switch c.Mechanism {
	case MechanismSCRAMSHA512, MechanismSCRAMSHA256:
	case MechanismPlain:
		if !tls {
			return fmt.Errorf("%s.mechanism: PLAIN sends the password in the clear: only with tls.enabled (or use SCRAM-SHA-512)", prefix)
		}
	default:
		return fmt.Errorf("%s.mechanism: %q is not SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", prefix, c.Mechanism)
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		return fmt.Errorf("%s: password and password_file exclude each other", prefix)
	case c.Password == "" && c.PasswordFile == "":
		return fmt.Errorf("%s.password: required with a username (or password_file)", prefix)
	case c.PasswordFile != "":
		if _, err := readPassword(c.PasswordFile); err != nil {
			return fmt.Errorf("%s.password_file: %w", prefix, err)
		}
	}
	return nil
}

// mechanism returns the kafka-go SASL mechanism, or nil when SASL is off.
func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	c = c.withDefaults()
	if !c.Enabled() {
		return nil, nil
	}
	pw := c.Password.Reveal()
	if c.PasswordFile != "" {
		var err error
		if pw, err = readPassword(c.PasswordFile); err != nil {
			return nil, fmt.Errorf("sasl: password_file: %w", err)
		}
	}
	switch c.Mechanism {
	case MechanismSCRAMSHA512:
		return scramMechanism(scram.SHA512, c.Username, pw)
	case MechanismSCRAMSHA256:
		return scramMechanism(scram.SHA256, c.Username, pw)
	case MechanismPlain:
		return plain.Mechanism{Username: c.Username, Password: pw}, nil
	}
	return nil, fmt.Errorf("sasl: mechanism %q is not SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", c.Mechanism)
}

func scramMechanism(algo scram.Algorithm, user, pw string) (sasl.Mechanism, error) {
	m, err := scram.Mechanism(algo, user, pw)
	if err != nil {
		// The error of the SCRAM library names neither the password
		// nor the user; say which.
		return nil, fmt.Errorf("sasl: user %s: %w", user, err)
	}
	return m, nil
}

// readPassword returns the first line of path.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", errors.New("empty")
	}
	return pw, nil
}
