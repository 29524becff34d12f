package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
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
	if err := writePrivate(filepath.Join(dir, AdminTokenName), []byte(tok+"\n")); err != nil {
		return "", false, err
	}
	b, err := yaml.Marshal(File{Tokens: []Token{entry}})
	if err != nil {
		return "", false, fmt.Errorf("tokens file: %w", err)
	}
	if err := writePrivate(tokensFile, b); err != nil {
		return "", false, err
	}
	return tokensFile, true, nil
}

// writePrivate writes a new file readable by its owner only, atomically.
func writePrivate(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
