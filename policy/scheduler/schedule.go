package scheduler

import (
	"fmt"
	"time"
	// Zone rules come from the system's tzdata; Go's embedded copy is
	// the fallback where a machine has none, so a job's zone resolves the
	// same everywhere the binary runs.
	_ "time/tzdata"
)

// ScheduleType is ONETIME or RECURRING (OCI OS Management's
// schedule_type).
type ScheduleType string

// Schedule types.
const (
	OneTime   ScheduleType = "ONETIME"
	Recurring ScheduleType = "RECURRING"
)

// IntervalType is the unit of a recurring job's interval.
type IntervalType string

// Interval types.
const (
	Hour  IntervalType = "HOUR"
	Day   IntervalType = "DAY"
	Week  IntervalType = "WEEK"
	Month IntervalType = "MONTH"
)

// maxIntervalValue bounds interval_value (1000 months is 83 years).
const maxIntervalValue = 1000

// Schedule is when a job runs: once at First, or every IntervalValue
// IntervalTypes from First, in Location.
//
// The k-th execution is computed from First, never from the one before,
// so nothing drifts:
//   - HOUR: First + k×interval hours of absolute time (across a DST
//     change the wall clock moves by the change; the spacing does not).
//   - DAY, WEEK: First's wall-clock time in Location on First's date +
//     k×interval (×7) days.
//   - MONTH: First's day of month and wall-clock time, k×interval months
//     on; a day the month lacks is clamped to its last day (Jan 31 →
//     Feb 28, or 29 in a leap year → Mar 31: the anchor day is kept, as
//     cron and OCI do).
//
// A wall-clock time that does not exist on a day (skipped by a DST
// change, 02:30 on a spring-forward day) is read with the UTC offset
// before the gap, so it runs as much later as the gap is long (03:30
// after a one-hour gap); one that occurs twice (a fall-back day) is its
// first occurrence. Both are RFC 5545's rules (iCalendar's DTSTART with a
// TZID). Executions that land on one instant (a day a zone skipped
// entirely, as Pacific/Apia's 30 December 2011) run once.
type Schedule struct {
	Type          ScheduleType
	First         time.Time
	Location      *time.Location
	IntervalType  IntervalType
	IntervalValue int
}

// Validate checks the schedule can be computed.
func (s Schedule) Validate() error {
	if s.First.IsZero() {
		return fmt.Errorf("no first execution")
	}
	switch s.Type {
	case OneTime:
		if s.IntervalType != "" || s.IntervalValue != 0 {
			return fmt.Errorf("a ONETIME schedule takes no interval")
		}
		return nil
	case Recurring:
	default:
		return fmt.Errorf("schedule_type %q is not ONETIME or RECURRING", s.Type)
	}
	switch s.IntervalType {
	case Hour, Day, Week, Month:
	default:
		return fmt.Errorf("interval_type %q is not HOUR, DAY, WEEK or MONTH", s.IntervalType)
	}
	if s.IntervalValue < 1 || s.IntervalValue > maxIntervalValue {
		return fmt.Errorf("interval_value %d is not 1-%d", s.IntervalValue, maxIntervalValue)
	}
	if s.Location == nil {
		return fmt.Errorf("no time zone")
	}
	return nil
}

// At returns the k-th execution (k ≥ 0; At(0) is First).
func (s Schedule) At(k int) time.Time {
	if k == 0 || s.Type != Recurring {
		return s.First
	}
	n := k * s.IntervalValue
	if s.IntervalType == Hour {
		return s.First.Add(time.Duration(n) * time.Hour)
	}
	local := s.First.In(s.Location)
	y, m, d := local.Date()
	hh, mm, ss := local.Clock()
	ns := local.Nanosecond()
	switch s.IntervalType {
	case Week:
		n *= 7
		fallthrough
	case Day:
		// time.Date normalizes the day count into a civil date (UTC has
		// no gaps to trip on).
		y, m, d = time.Date(y, m, d+n, 0, 0, 0, 0, time.UTC).Date()
	case Month:
		months := int(m) - 1 + n
		y, m = y+months/12, time.Month(months%12+1)
		d = min(d, daysIn(y, m))
	}
	return wallTime(s.Location, y, m, d, hh, mm, ss, ns)
}

// Next returns the first execution strictly after t; false when there is
// none (a ONETIME schedule whose time passed).
func (s Schedule) Next(t time.Time) (time.Time, bool) {
	if s.First.After(t) {
		return s.First, true
	}
	if s.Type != Recurring {
		return time.Time{}, false
	}
	// Estimate the index, then correct it: At is increasing in k, and
	// the estimate is off by a step or two at most.
	var k int
	switch s.IntervalType {
	case Hour:
		k = int(t.Sub(s.First)/(time.Duration(s.IntervalValue)*time.Hour)) + 1
	case Day, Week:
		days := s.IntervalValue
		if s.IntervalType == Week {
			days *= 7
		}
		k = int(t.Sub(s.First).Hours() / 24 / float64(days))
	case Month:
		a, b := s.First.In(s.Location), t.In(s.Location)
		k = ((b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())) / s.IntervalValue
	}
	k = max(k, 1)
	for k > 1 && s.At(k-1).After(t) {
		k--
	}
	for !s.At(k).After(t) {
		k++
	}
	return s.At(k), true
}

// Upcoming returns the next n executions after t.
func (s Schedule) Upcoming(t time.Time, n int) []time.Time {
	var out []time.Time
	for len(out) < n {
		next, ok := s.Next(t)
		if !ok {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}

// daysIn returns the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// wallTime returns the instant the wall-clock time y-m-d hh:mm:ss.ns
// names in loc, by RFC 5545's rules: the first of two (a fall-back
// day), or read with the offset before the gap when it does not exist.
// (time.Date leaves both choices unspecified.)
func wallTime(loc *time.Location, y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	naive := time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
	// The offsets in force a day either side: a zone changes its offset
	// at most once in any 52 hours.
	before := offset(naive.Add(-26*time.Hour), loc)
	after := offset(naive.Add(26*time.Hour), loc)
	var best time.Time
	for _, off := range []int{before, after} {
		t := naive.Add(-time.Duration(off) * time.Second)
		if sameWall(t.In(loc), naive) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if best.IsZero() { // in a gap
		best = naive.Add(-time.Duration(before) * time.Second)
	}
	return best
}

func offset(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

func sameWall(t, naive time.Time) bool {
	y, m, d := t.Date()
	ny, nm, nd := naive.Date()
	return y == ny && m == nm && d == nd && t.Hour() == naive.Hour() && t.Minute() == naive.Minute() && t.Second() == naive.Second() && t.Nanosecond() == naive.Nanosecond()
}
