package forwarder

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestSendFlushesWhenInputPauses: Send batches writes while input keeps
// coming, but an event followed by a pause in the input reaches the SIEM
// without waiting for more input or for its end (bounded latency).
func TestSendFlushesWhenInputPauses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString(' ') // the frame's length: the first bytes of the first message
		got <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		d := Destination{Name: "siem", Address: ln.Addr().String(), PlainTCP: true}
		_, err := Send(ctx, d, pr, SendOptions{})
		done <- err
	}()
	if _, err := pw.Write(append(testEvent(1).AppendJSON(nil), '\n')); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l == "" {
			t.Fatal("the SIEM read nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an event followed by a pause in the input did not reach the SIEM within 5s")
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
