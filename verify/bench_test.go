package verify

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/schemas"
)

// BenchmarkCheckStore: verify's memory over a store of hosts × events
// command events (raw_data of about 1.3 KB, as a command's SYSCALL,
// EXECVE, CWD, PATH and PROCTITLE records are), against the baseline in
// the same run: every copy read whole, then checked at once, as verify did
// before CheckStore. peak-heap-MB is the most heap (live and not yet
// collected) seen while one verification ran, sampled every millisecond.
func BenchmarkCheckStore(b *testing.B) {
	for _, st := range []struct{ hosts, events int }{{8, 5000}, {1, 40_000}} {
		b.Run(fmt.Sprintf("%dx%d", st.hosts, st.events), func(b *testing.B) {
			benchCheckStore(b, st.hosts, st.events)
		})
	}
}

func benchCheckStore(b *testing.B, hosts, events int) {
	eng := clickhousetest.OpenMigrated(b)
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	opt := Options{Keys: map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}}
	pad := strings.Repeat("type=PATH msg=audit(1720000000.000:1) : item=0 name=/usr/bin/ls inode=1 dev=fd:00 mode=file,755 ouid=root ogid=root \n", 9)
	for h := range hosts {
		var in strings.Builder
		picked := clickhousetest.ManyEvents(events, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
		for i := range picked {
			picked[i].RawData += pad
		}
		for _, e := range clickhousetest.Chain(fmt.Sprintf("host-%02d", h), picked, 100, key) {
			in.Write(e.AppendJSON(nil))
			in.WriteByte('\n')
		}
		if st, err := indexer.Load(ctx, eng, strings.NewReader(in.String()), indexer.LoadOptions{BatchRows: 10_000}); err != nil || st.Rejected > 0 {
			b.Fatalf("load: %+v %v", st, err)
		}
	}
	for _, tc := range []struct {
		name  string
		check func(b *testing.B) *Report
	}{
		{"whole", func(b *testing.B) *Report { // the baseline
			recs, conflicts := loadAll(b, eng, Filter{})
			return Check(recs, conflicts, opt)
		}},
		{"host_by_host", func(b *testing.B) *Report {
			rep, err := CheckStore(ctx, eng, Filter{}, opt)
			if err != nil {
				b.Fatal(err)
			}
			return rep
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var peak uint64
			for b.Loop() {
				runtime.GC()
				stop := sampleHeap(&peak)
				rep := tc.check(b)
				stop()
				if len(rep.Hosts) != hosts || !rep.Intact() {
					b.Fatalf("report:\n%s", written(b, rep))
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

// sampleHeap records in peak, until stop is called, the most heap seen
// (objects live or not yet collected), sampled every millisecond.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
