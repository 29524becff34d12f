package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestShutdownEndsStreams: a response that lasts until its request's
// context ends (a server-sent event stream) does not hold the shutdown
// until its deadline; Shutdown would fail with "context deadline
// exceeded" if the stream's context were never cancelled.
func TestShutdownEndsStreams(t *testing.T) {
	streaming := make(chan struct{})
	ended := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(streaming)
		<-r.Context().Done()
		close(ended)
	})
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, "127.0.0.1:0", h, nil, func(a net.Addr) { addrc <- a.String() }) }()
	resp, err := http.Get("http://" + <-addrc + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-streaming
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("the stream's request context was not cancelled")
	}
	io.Copy(io.Discard, resp.Body)
}
