package scheduler

import (
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func parseIn(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.In(loc)
}

// TestScheduleUpcoming: the next executions of a schedule, as wall-clock
// times with their offsets in the job's zone: month ends (the anchor day
// kept, clamped to a short month), leap years, DST changes in named
// zones (a skipped 02:30, a repeated 01:30, a 30-minute gap, a skipped
// day), intervals > 1, and HOUR intervals that keep absolute time across
// DST.
func TestScheduleUpcoming(t *testing.T) {
	tests := []struct {
		name     string
		zone     string
		first    string
		typ      IntervalType
		interval int
		after    string // "" = just before first
		want     []string
	}{
		{"daily UTC", "UTC", "2026-03-02T09:00:00Z", Day, 1, "",
			[]string{"2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z", "2026-03-04T09:00:00Z"}},
		{"monthly from Jan 31: clamped, the anchor day kept", "UTC", "2026-01-31T09:00:00Z", Month, 1, "",
			[]string{"2026-01-31T09:00:00Z", "2026-02-28T09:00:00Z", "2026-03-31T09:00:00Z", "2026-04-30T09:00:00Z", "2026-05-31T09:00:00Z"}},
		{"monthly from Jan 31 in a leap year", "UTC", "2028-01-31T09:00:00Z", Month, 1, "",
			[]string{"2028-01-31T09:00:00Z", "2028-02-29T09:00:00Z", "2028-03-31T09:00:00Z"}},
		{"every 12 months from Feb 29", "UTC", "2028-02-29T12:00:00Z", Month, 12, "",
			[]string{"2028-02-29T12:00:00Z", "2029-02-28T12:00:00Z", "2030-02-28T12:00:00Z", "2031-02-28T12:00:00Z", "2032-02-29T12:00:00Z"}},
		{"every 3 months from Nov 30 across the year end", "UTC", "2025-11-30T22:00:00Z", Month, 3, "",
			[]string{"2025-11-30T22:00:00Z", "2026-02-28T22:00:00Z", "2026-05-30T22:00:00Z", "2026-08-30T22:00:00Z", "2026-11-30T22:00:00Z"}},
		{"monthly on the 31st in a zone: the wall time kept across DST", "America/New_York", "2026-01-31T23:30:00-05:00", Month, 1, "",
			[]string{"2026-01-31T23:30:00-05:00", "2026-02-28T23:30:00-05:00", "2026-03-31T23:30:00-04:00"}},
		{"daily 02:30 on a spring-forward day (New York)", "America/New_York", "2026-03-06T02:30:00-05:00", Day, 1, "",
			[]string{"2026-03-06T02:30:00-05:00", "2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"daily 02:30 on a spring-forward day (Berlin)", "Europe/Berlin", "2026-03-28T02:30:00+01:00", Day, 1, "",
			[]string{"2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"daily 01:30 on a fall-back day: the first of the two, once", "America/New_York", "2026-10-31T01:30:00-04:00", Day, 1, "",
			[]string{"2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"a 30-minute gap (Lord Howe)", "Australia/Lord_Howe", "2026-10-03T02:15:00+10:30", Day, 1, "",
			[]string{"2026-10-03T02:15:00+10:30", "2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00"}},
		{"a day the zone skipped runs once (Apia, 30 Dec 2011)", "Pacific/Apia", "2011-12-29T10:00:00-10:00", Day, 1, "",
			[]string{"2011-12-29T10:00:00-10:00", "2011-12-31T10:00:00+14:00", "2012-01-01T10:00:00+14:00"}},
		{"every 3 days across spring forward", "Europe/Berlin", "2026-03-24T06:00:00+01:00", Day, 3, "",
			[]string{"2026-03-24T06:00:00+01:00", "2026-03-27T06:00:00+01:00", "2026-03-30T06:00:00+02:00", "2026-04-02T06:00:00+02:00"}},
		{"every 2 weeks on Monday 09:00 across spring forward", "Europe/Berlin", "2026-03-16T09:00:00+01:00", Week, 2, "",
			[]string{"2026-03-16T09:00:00+01:00", "2026-03-30T09:00:00+02:00", "2026-04-13T09:00:00+02:00"}},
		{"hourly across spring forward: absolute time", "America/New_York", "2026-03-08T00:30:00-05:00", Hour, 1, "",
			[]string{"2026-03-08T00:30:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-08T04:30:00-04:00"}},
		{"hourly across fall back: 01:30 twice, an hour apart", "America/New_York", "2026-11-01T00:30:00-04:00", Hour, 1, "",
			[]string{"2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"}},
		{"every 5 hours across fall back", "Europe/Berlin", "2026-10-24T22:00:00+02:00", Hour, 5, "",
			[]string{"2026-10-24T22:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T07:00:00+01:00"}},
		{"monthly, far from first (the index estimate)", "America/New_York", "2026-01-31T08:00:00-05:00", Month, 1, "2036-02-15T00:00:00Z",
			[]string{"2036-02-29T08:00:00-05:00", "2036-03-31T08:00:00-04:00"}},
		{"hourly, years from first", "UTC", "2026-01-01T00:15:00Z", Hour, 7, "2031-06-01T00:00:00Z",
			[]string{"2031-06-01T05:15:00Z", "2031-06-01T12:15:00Z"}},
		{"daily, years from first, on an execution", "Europe/Berlin", "2026-01-01T09:00:00+01:00", Day, 1, "2030-07-01T09:00:00+02:00",
			[]string{"2030-07-02T09:00:00+02:00", "2030-07-03T09:00:00+02:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := zone(t, tt.zone)
			s := Schedule{Type: Recurring, First: parseIn(t, loc, tt.first), Location: loc, IntervalType: tt.typ, IntervalValue: tt.interval}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			after := s.First.Add(-time.Nanosecond)
			if tt.after != "" {
				after = parseIn(t, loc, tt.after)
			}
			var got []string
			for _, v := range s.Upcoming(after, len(tt.want)) {
				got = append(got, v.In(loc).Format(time.RFC3339))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("upcoming after %s:\n got %v\nwant %v", after.Format(time.RFC3339), got, tt.want)
			}
			// Next from just before each execution finds it, and from
			// each execution the one after: At and Next agree.
			for i := 1; i < len(got); i++ {
				prev := parseIn(t, loc, got[i-1])
				if n, _ := s.Next(prev); n.In(loc).Format(time.RFC3339) != got[i] {
					t.Errorf("Next(%s) = %s, want %s", got[i-1], n.In(loc).Format(time.RFC3339), got[i])
				}
			}
		})
	}
}

// TestScheduleOneTime: a ONETIME schedule has its one execution, then
// none.
func TestScheduleOneTime(t *testing.T) {
	first := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s := Schedule{Type: OneTime, First: first, Location: time.UTC}
	if n, ok := s.Next(first.Add(-time.Second)); !ok || !n.Equal(first) {
		t.Fatalf("before: %s %v", n, ok)
	}
	if n, ok := s.Next(first); ok {
		t.Fatalf("after: %s", n)
	}
	if got := s.Upcoming(first.Add(-time.Hour), 5); len(got) != 1 {
		t.Fatalf("upcoming %v", got)
	}
}

// TestScheduleValidate: what a schedule may not be.
func TestScheduleValidate(t *testing.T) {
	first := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		s    Schedule
		want string
	}{
		{Schedule{Type: OneTime, First: first, Location: time.UTC, IntervalType: Day}, "takes no interval"},
		{Schedule{Type: "WEEKLY", First: first, Location: time.UTC}, "is not ONETIME or RECURRING"},
		{Schedule{Type: Recurring, First: first, Location: time.UTC, IntervalType: "YEAR", IntervalValue: 1}, "interval_type"},
		{Schedule{Type: Recurring, First: first, Location: time.UTC, IntervalType: Day}, "interval_value 0"},
		{Schedule{Type: Recurring, First: first, Location: time.UTC, IntervalType: Day, IntervalValue: 1001}, "interval_value 1001"},
		{Schedule{Type: Recurring, Location: time.UTC, IntervalType: Day, IntervalValue: 1}, "no first execution"},
	}
	for _, tt := range tests {
		if err := tt.s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.s, err, tt.want)
		}
	}
}
