package kafka

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TestBufferedConnDeadlines checks that the reader connections' buffer
// keeps read deadlines meaningful: data already buffered is returned
// whatever the deadline, a deadline applies as soon as a read would wait
// on the connection, and a new deadline wakes a read that waits.
func TestBufferedConnDeadlines(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := &bufferedConn{Conn: client, r: bufio.NewReaderSize(client, 64)}
	go func() { _, _ = server.Write([]byte("abcdef")) }()

	// Fill the buffer, then read the rest of it after a deadline passed.
	b := make([]byte, 2)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "ab" {
		t.Fatalf("first read: %q, %v", b[:n], err)
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 16)
	if n, err := c.Read(rest); err != nil || string(rest[:n]) != "cdef" {
		t.Fatalf("buffered read after the deadline: %q, %v; want the buffered bytes", rest[:n], err)
	}
	// Buffer empty: the past deadline now applies.
	if _, err := c.Read(rest); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on an empty buffer after the deadline: %v, want a timeout", err)
	}

	// A cleared deadline lets a read wait for data again.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = server.Write([]byte("gh")) }()
	if n, err := c.Read(rest); err != nil || string(rest[:n]) != "gh" {
		t.Fatalf("read after clearing the deadline: %q, %v", rest[:n], err)
	}

	// A deadline set while a read waits on the connection wakes it.
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(rest)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the read block
	if err := c.SetDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiting read woken with %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline set during a waiting read did not wake it")
	}
}

// TestBrief: one error per message becomes one line with counts, and the
// original stays reachable.
func TestBrief(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")
	we := kafkago.WriteErrors{refused, refused, nil, kafkago.MessageTooLargeError{}, refused}
	err := Brief(fmt.Errorf("wrapped: %w", we))
	want := "4 of 5 messages not written: dial tcp 127.0.0.1:9092: connect: connection refused (3 times); " + kafkago.MessageTooLargeError{}.Error()
	if err.Error() != want {
		t.Fatalf("Brief = %q\nwant %q", err, want)
	}
	var got kafkago.WriteErrors
	if !errors.As(err, &got) || len(got) != 5 {
		t.Fatalf("the original WriteErrors is not reachable through %v", err)
	}
	plain := errors.New("boom")
	if Brief(plain) != plain || Brief(nil) != nil {
		t.Fatal("Brief changed an error that is not a WriteErrors")
	}
}
