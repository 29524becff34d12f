//go:build !linux || !(amd64 || arm64)

package chdb

// keepGoFaultHandlers runs f. Only Linux on amd64 and arm64 has a libchdb
// (and the handler restore of signals_linux.go).
func keepGoFaultHandlers(f func()) error {
	f()
	return nil
}
