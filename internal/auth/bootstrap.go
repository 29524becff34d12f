package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/internal/privfile"
)

// Bootstrap files in a data directory.
const (
	TokensFileName = "tokens.yaml"
	AdminTokenName = "admin.token"
)

// Bootstrap makes dir private (0700) and, on first start, creates its
// credentials: an admin token, written 0600 to dir/admin.token for the
// operator to read once, and dir/tokens.yaml holding its hash. Later starts
// keep what is there. It returns the tokens file's path and whether the
// admin token was created now.
func Bootstrap(dir string) (tokensFile string, created bool, err error) {
	if err := privfile.Dir(dir); err != nil {
		return "", false, fmt.Errorf("data directory: %w", err)
	}
	tokensFile = filepath.Join(dir, TokensFileName)
	if _, err := os.Stat(tokensFile); err == nil {
		return tokensFile, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("tokens file: %w", err)
	}
	tok, entry, err := NewToken("admin", RoleAdmin)
	if err != nil {
		return "", false, err
	}
	if err := privfile.Write(filepath.Join(dir, AdminTokenName), []byte(tok+"\n")); err != nil {
		return "", false, err
	}
	b, err := yaml.Marshal(File{Tokens: []Token{entry}})
	if err != nil {
		return "", false, fmt.Errorf("tokens file: %w", err)
	}
	if err := privfile.Write(tokensFile, b); err != nil {
		return "", false, err
	}
	return tokensFile, true, nil
}
