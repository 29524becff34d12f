package main

import (
	"fmt"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/sign"
)

// runAgentEnroll is `auditpipe agent enroll`: an administrator enrolls a
// host agent's public key (agent.key_file.pub, which the agent makes at
// its first start) in the directory of enrolled host keys
// (host_keys.dir) that the policy service, the scheduler and the indexer
// verify opctl.agent.v1 against. Revoking is removing the file it
// prints.
func runAgentEnroll(e env, args []string) error {
	fs := newFlagSet("agent enroll", "agent enroll --host HOST --key FILE.pub [--dir DIR]", e.stderr)
	host := fs.String("host", "", "the host, as its agent names itself (agent.host)")
	keyFile := fs.String("key", "", "the agent's public key `FILE` (agent.key_file + .pub)")
	dir := fs.String("dir", app.DefaultHostKeysDir, "the enrolled host keys' `DIR` (host_keys.dir; the all-in-one's: DATA/"+app.HostKeysDirName+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *host == "" || *keyFile == "" || *dir == "" {
		fs.Usage()
		return errUsage
	}
	pub, err := sign.LoadPublicKey(*keyFile)
	if err != nil {
		return err
	}
	path, err := sign.Enroll(*dir, *host, pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "host %s: key %s enrolled in %s (remove it to revoke)\n", *host, sign.KeyID(pub), path)
	return nil
}
