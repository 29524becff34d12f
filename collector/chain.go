package collector

import (
	"crypto/ed25519"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// chainRange is what one batch chained for one host.
type chainRange struct {
	first, last uint64
	count       uint64
	link        string // prev_hash of event first
	head        string // hash of event last
	ts          string // ts of event last
	time        string
}

// chainBatch collects, per host, the events the current batch chained,
// for the chain checkpoint the flush emits.
type chainBatch struct {
	order []string // hosts in the order they first appeared
	hosts map[string]*chainRange
}

// add records e, whose hash (the host's new head) is head.
func (c *chainBatch) add(e *schemas.Event, head string) {
	if c.hosts == nil {
		c.hosts = map[string]*chainRange{}
	}
	r := c.hosts[e.Host]
	if r == nil {
		r = &chainRange{first: e.Seq, link: e.PrevHash}
		c.hosts[e.Host] = r
		c.order = append(c.order, e.Host)
	}
	r.last, r.head, r.ts, r.time = e.Seq, head, e.TS, e.Time
	r.count++
}

func (c *chainBatch) reset() {
	c.order = c.order[:0]
	clear(c.hosts)
}

// checkpoints returns one chain checkpoint message per host of the batch,
// signed with key when it is set. Each is a function of the chained events
// only (its ts is the head event's), so a batch sent again is the same.
func (c *chainBatch) checkpoints(key ed25519.PrivateKey, layer string) []kafka.Record {
	out := make([]kafka.Record, 0, len(c.order))
	for _, host := range c.order {
		r := c.hosts[host]
		ev := schemas.Event{
			Layer: layer, Event: schemas.KindChain, Host: host, Time: r.time, TS: r.ts,
			EventID:    schemas.NewChainEventID(host, r.first, r.last),
			PrevHash:   r.link,
			ChainFirst: r.first, ChainLast: r.last, ChainCount: r.count, ChainHead: r.head,
		}
		if ev.TS == "" {
			ev.TS = time.Now().UTC().Format(schemas.TSLayout)
		}
		if key != nil {
			ev.SignChain(key)
		}
		out = append(out, kafka.Record{Key: []byte(host), Value: ev.AppendJSON(nil)})
	}
	return out
}
