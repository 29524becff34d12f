package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for n := range 12 {
		d := Delay(n, 100*time.Millisecond, 5*time.Second)
		ceil := min(100*time.Millisecond<<n, 5*time.Second)
		if d < ceil/2 || d > ceil {
			t.Errorf("attempt %d: %s, want within [%s, %s]", n, d, ceil/2, ceil)
		}
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep with a live context reported it was cut short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with an ended context reported the delay elapsed")
	}
	if time.Since(start) > time.Second {
		t.Error("Sleep with an ended context waited")
	}
}
