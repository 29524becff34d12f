package kafka_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/testlog"
)

// Regression: an idle partition made the group reader log "reading the
// partition failed; reconnecting" after every fetch that waited MaxWait
// without data (about twice a second in the forwarder): an idle fetch is
// not an error, and logs nothing.
func TestGroupReaderIdleLogsNothing(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	var buf testlog.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: "idle", Topics: []string{topic}, MaxWait: 100 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	handled := make(chan struct{}, 1)
	w, err := cfg.NewWriter(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wrote := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second) // 20 idle fetches first
		wrote <- w.Write(ctx, kafka.Record{Key: []byte("k"), Value: []byte("v")})
	}()
	if err := r.Run(ctx, func(context.Context, kafka.Batch) error {
		select {
		case handled <- struct{}{}:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(buf.String()); s != "" {
		t.Fatalf("idle fetches logged warnings:\n%s", s)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	default:
		t.Fatal("the record written after the idle time was not read")
	}
}
