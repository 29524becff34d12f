package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// trailEvent is one command or keystroke event of a request's live trail.
type trailEvent struct {
	ID    string `json:"id"`
	Time  string `json:"time"`
	Host  string `json:"host"`
	Event string `json:"event"`
	User  string `json:"user"`
	Text  string `json:"text"`
	// written is when the store received it (the cursor of the poll).
	written int64
}

// trailSQL reads a request's commands and keystrokes received at or after
// {since} (ms): the first stored copy of each event, oldest first.
const trailSQL = `SELECT event_id, toString(ts), host, event, euid, arrayStringConcat(args, ' '), keys, toUnixTimestamp64Milli(inserted_at)
FROM audit_events
WHERE req_auth_id = {req:String} AND event IN ('command', 'keys') AND toUnixTimestamp64Milli(inserted_at) >= {since:Int64}
ORDER BY ts, event_id
LIMIT 1000
SETTINGS final = 1`

// trailEvents reads the trail of request id received since since.
func (c *Console) trailEvents(ctx context.Context, id string, since time.Time) ([]trailEvent, error) {
	ms := int64(0)
	if !since.IsZero() {
		ms = since.UnixMilli()
	}
	res, err := c.deps.Store.QueryParams(ctx, trailSQL, []clickhouse.Param{clickhouse.StringParam("req", id), {Name: "since", Value: strconv.FormatInt(ms, 10)}})
	if err != nil {
		return nil, fmt.Errorf("console: the trail of %s: %w", id, err)
	}
	out := make([]trailEvent, 0, len(res.Rows))
	for _, r := range res.Rows {
		if len(r) != 8 {
			return nil, fmt.Errorf("console: the trail of %s: a row of %d columns, want 8", id, len(r))
		}
		e := trailEvent{ID: clickhouse.ValueString(r[0]), Time: clickhouse.ValueString(r[1]), Host: clickhouse.ValueString(r[2]),
			Event: clickhouse.ValueString(r[3]), User: clickhouse.ValueString(r[4]), Text: clickhouse.ValueString(r[5])}
		if e.Event == "keys" {
			e.Text = clickhouse.ValueString(r[6])
		}
		e.written, _ = strconv.ParseInt(clickhouse.ValueString(r[7]), 10, 64)
		out = append(out, e)
	}
	return out, nil
}

// trailOverlap is how far back each poll reads again: rows of one insert
// may become visible after rows written later.
const trailOverlap = 5 * time.Second

// trail streams a request's commands and keystrokes as server-sent
// events (event "trail", data = one trailEvent as JSON), from the first
// stored and then as they arrive, until the visitor leaves. Each event
// is sent once per stream; the page skips the ones it already shows (by
// id), so a reconnection repeats nothing on screen.
func (c *Console) trail(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	req, err := c.deps.API.VisibleRequest(ctx, s.who, r.PathValue("id"))
	if err != nil {
		return err
	}
	if c.deps.Store == nil {
		return fmt.Errorf("console: no audit store for the live trail")
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	seen := map[string]bool{}
	var since time.Time
	tick := time.NewTicker(c.opts.TrailPoll)
	defer tick.Stop()
	for {
		evs, err := c.trailEvents(ctx, req.ID, since)
		if err != nil {
			if ctxDone(ctx) {
				return nil
			}
			c.log.Warn("console: live trail", "request", req.ID, "err", err)
			fmt.Fprintf(w, "event: trailerror\ndata: %s\n\n", jsonString("the audit store did not answer; retrying"))
		}
		for _, e := range evs {
			if t := time.UnixMilli(e.written).Add(-trailOverlap); t.After(since) {
				since = t
			}
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %s\nevent: trail\ndata: %s\n\n", e.ID, b)
		}
		if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.streams.Done():
			return nil
		case <-tick.C:
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
