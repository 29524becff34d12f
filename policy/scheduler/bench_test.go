package scheduler

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// BenchmarkExecution runs an execution of n targets end to end on SQLite
// (max concurrency 10, every agent report a success that dispatches the
// next), and reports the agent reports applied per second: each report
// reads its whole execution, so the cost per report grows with n.
func BenchmarkExecution(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := newFixture(b, backends()[0])
			hosts := make([]string, n)
			for i := range hosts {
				hosts[i] = fmt.Sprintf("h%05d", i)
			}
			f.instances(hosts...)
			b.ResetTimer()
			reports := 0
			for i := 0; i < b.N; i++ {
				j := f.job(JobInput{ManagedInstances: hosts, MaxConcurrency: "10"})
				must[Execution](b)(f.svc.RunNow(f.ctx, admin, j.ID, 0))
				for {
					ds := f.dispatches()
					if len(ds) == 0 {
						break
					}
					for _, d := range ds {
						if _, err := f.svc.ReportProgress(f.ctx, agentID, schemas.WorkProgress{WorkRequestID: d.WorkRequestID, Host: d.Host, Seq: 1,
							Status: schemas.WorkSucceeded, PercentComplete: 100, Time: f.clock.Now()}); err != nil {
							b.Fatal(err)
						}
						reports++
					}
				}
				f.clock.Add(time.Minute)
			}
			b.ReportMetric(float64(reports)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
