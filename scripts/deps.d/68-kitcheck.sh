#!/usr/bin/env bash
# Downloads the modules of deploy/kitcheck (k8s.io/api, compose-go: a
# module of its own, out of auditpipe's go.mod) and builds it once, so the
# deploy tests that build it (deploy/helm_test.go) find the build cache
# warm. Idempotent: the go command does nothing for what it has.
set -euo pipefail
cd "$(dirname "$0")/../../deploy/kitcheck"
go mod download
nice go build -o /dev/null .
