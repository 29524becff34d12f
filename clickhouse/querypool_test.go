package clickhouse_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

// slowSQL runs for minutes unless killed; its text names it in
// system.processes.
const slowSQL = "SELECT count() FROM numbers(1e12) SETTINGS max_execution_time = 120 /* pool-test-slow */"

// startSlow runs slowSQL on p until ctx ends and waits until ClickHouse
// lists it as running; the channel gets its error.
func startSlow(t *testing.T, ctx context.Context, eng *clickhouse.Embedded, p *clickhouse.QueryPool) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := p.QueryFormat(ctx, slowSQL, "TabSeparated")
		done <- err
	}()
	for deadline := time.Now().Add(time.Minute); ; {
		b, err := eng.QueryFormat(context.Background(),
			"SELECT count() FROM system.processes WHERE query LIKE '%pool-test-slow%' AND query NOT LIKE '%system.processes%'", "TabSeparated")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) != "0" {
			return done
		}
		select {
		case err := <-done:
			t.Fatalf("slow query ended before it was seen running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("slow query not seen running after 1 min")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Regression (issue 9): the query endpoint had one chDB session for every
// reader, so one slow query held up the next reader's query until
// max_execution_time ended it. Now a pool: the next reader runs on another
// session while the slow one runs; with every session busy a reader waits
// only while its context lasts; a closed pool answers an error. And Close
// killed only queries whose context could end (the others ran untagged)
// and waited for the rest to finish: the "closed" case's query, with a
// context that never ends, ran to its max_execution_time.
func TestQueryPool(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()

	t.Run("the next reader runs beside a slow query", func(t *testing.T) {
		p, err := eng.OpenQueryPool(2)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		done := startSlow(t, sctx, eng, p)
		b, err := p.QueryFormat(ctx, "SELECT 40 + 2", "TabSeparated")
		if err != nil || strings.TrimSpace(string(b)) != "42" {
			t.Fatalf("next reader: %q, %v", b, err)
		}
		select {
		case err := <-done:
			t.Fatalf("the slow query ended before the next reader's: %v", err)
		default:
		}
		stop()
		if err := <-done; err == nil {
			t.Error("the cancelled slow query returned no error")
		}
		// Its session is free again: two more queries at once.
		for range 2 {
			if _, _, err := p.QueryFormatStats(ctx, "SELECT 1", "TabSeparated", nil); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("every session busy: a reader waits while its context lasts", func(t *testing.T) {
		p, err := eng.OpenQueryPool(1)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		done := startSlow(t, sctx, eng, p)
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = p.QueryFormatParams(wctx, "SELECT 1", "TabSeparated", nil)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free query session") {
			t.Errorf("waiting reader: %v; want the wait's deadline", err)
		}
		stop()
		<-done
		if _, err := p.QueryFormat(ctx, "SELECT 1", "TabSeparated"); err != nil {
			t.Errorf("after the slow query: %v", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		p, err := eng.OpenQueryPool(0)
		if err != nil {
			t.Fatal(err)
		}
		done := startSlow(t, ctx, eng, p) // a context that never ends
		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second): // half the query's own limit
			t.Fatal("Close waits for the running query instead of killing it")
		}
		if err := <-done; err == nil {
			t.Error("Close left the running query to finish")
		}
		if _, err := p.QueryFormat(ctx, "SELECT 1", "TabSeparated"); err == nil {
			t.Error("a closed pool answered")
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}
