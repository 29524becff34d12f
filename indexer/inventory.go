package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Inventories (issue 12): a message of opctl.agent.v1 with an
// "inventory" field is a host agent's package inventory, decoded
// strictly as schemas.Inventory and stored in instance_inventory, a
// header row (package '') and one row per installed package, which
// `auditpipe report compliance` reads. The topic's other messages (grant
// reports, work progress) go to pipeline_messages whole, as any other
// topic's. An inventory that does not decode is a counted dead letter
// with the reason, never a row.

// inventoryReport is the rows of one inventory message, inserted
// together (an instance's report is its header and its packages, or
// nothing).
type inventoryReport struct {
	rows    []clickhouse.InventoryRow
	payload []byte
	host    string
	source  string
}

// isInventory reports whether an opctl.agent.v1 message is an inventory:
// a JSON object with an "inventory" member, in a signed envelope or not
// (grants.AgentKind; an unsigned one is refused).
func isInventory(value []byte) bool {
	return grants.AgentKind(value) == schemas.AgentKindInventory
}

// openInventory verifies an inventory message against the key enrolled
// for the host it names and returns it; a refusal carries the dead-letter
// reason inventory_<grants reason>.
func openInventory(key, value []byte, hosts *sign.KeyDir) (grants.AgentMessage, error) {
	m, err := grants.DecodeAgent(key, value, hosts)
	if err != nil {
		return grants.AgentMessage{}, &rejectError{ReasonInventoryRefused + grants.Reason(err), err}
	}
	return m, nil
}

// admitInventory refuses a valid inventory written again (seqs, by host:
// a publish_seq below the last stored for the host, or the last with
// another payload, or none) as inventory_replayed. One read at partition
// and offset before the host's last stored inventory (read again after
// a crash before the commit) passes: storing it again changes nothing.
func admitInventory(m grants.AgentMessage, partition int, offset int64, seqs *grants.Seqs) error {
	err := seqs.AdmitRecord(grants.Numbered{Key: m.Host, Seq: m.Seq, Payload: m.Payload, Partition: partition, Offset: offset})
	if err != nil && !errors.Is(err, grants.ErrSuperseded) {
		return &rejectError{ReasonInventoryRefused + grants.Reason(err), err}
	}
	return nil
}

// InstanceHosts is what the policy knows of the managed instances: which
// host each is (policy/scheduler's Service).
type InstanceHosts interface {
	// InstanceHost returns the host of instance id; ok is false when the
	// policy knows no such instance.
	InstanceHost(ctx context.Context, id string) (host string, ok bool, err error)
}

// Why an inventory is refused when the policy's instances bind it
// (Deps.Instances), after the inventory_ prefix.
const (
	// ReasonInstanceMismatch: the instance is another host's: the signed
	// host's agent wrote over another instance's inventory.
	ReasonInstanceMismatch = "instance_mismatch"
	// ReasonUnknownInstance: the policy knows no such instance.
	ReasonUnknownInstance = "unknown_instance"
)

// bindInstance refuses an inventory of instance signed by host when the
// policy knows the instance as another host's, or not at all; with no
// InstanceHosts it accepts every one. While the policy store is away it
// retries until ctx ends (the batch waits, as for a ClickHouse outage).
func (ix *Indexer) bindInstance(ctx context.Context, host, instance string) error {
	if ix.instances == nil {
		return nil
	}
	for attempt := 0; ; attempt++ {
		owner, ok, err := ix.instances.InstanceHost(ctx, instance)
		switch {
		case err == nil && !ok:
			return &rejectError{ReasonInventoryRefused + ReasonUnknownInstance, fmt.Errorf("inventory of instance %s signed by host %s: the policy knows no such instance", instance, host)}
		case err == nil && owner != host:
			return &rejectError{ReasonInventoryRefused + ReasonInstanceMismatch, fmt.Errorf("inventory of instance %s signed by host %s: the instance is host %s", instance, host, owner)}
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if attempt == 0 {
			ix.log.Warn("reading the policy's instances failed: the inventory waits", "instance", instance, "err", err)
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 100*time.Millisecond, 5*time.Second)) {
			return ctx.Err()
		}
	}
}

// DecodeInventory decodes one inventory message into its rows of
// instance_inventory: a header row naming the instance (an empty package) and
// one row per package. The error, when not nil, carries the dead-letter
// reason (see RejectReason): oversize, invalid_utf8, invalid_json or
// invalid_inventory.
func DecodeInventory(value []byte, maxRowBytes int) ([]clickhouse.InventoryRow, error) {
	if maxRowBytes > 0 && len(value) > maxRowBytes {
		return nil, &rejectError{ReasonOversize, fmt.Errorf("%d bytes, limit %d", len(value), maxRowBytes)}
	}
	if !utf8.Valid(value) {
		return nil, &rejectError{ReasonInvalidUTF8, errors.New("inventory is not UTF-8")}
	}
	v := bytes.TrimSpace(value)
	if len(v) < 2 || v[0] != '{' || !json.Valid(v) {
		return nil, &rejectError{ReasonInvalidJSON, errors.New("inventory: not a JSON object")}
	}
	inv, err := schemas.DecodeInventory(v)
	if err != nil {
		return nil, &rejectError{ReasonInvalidInventory, err}
	}
	return InventoryRows(inv), nil
}

// InventoryRows are inv's rows of instance_inventory.
func InventoryRows(inv schemas.Inventory) []clickhouse.InventoryRow {
	head := clickhouse.InventoryRow{Time: inv.Time.UTC(), InstanceID: inv.InstanceID, InstanceName: inv.InstanceName,
		CompartmentID: inv.CompartmentID, CompartmentPath: inv.CompartmentPath, GroupIDs: inv.GroupIDs, OSFamily: inv.OSFamily,
		Partition: -1, Offset: -1}
	rows := make([]clickhouse.InventoryRow, 0, len(inv.Packages)+1)
	rows = append(rows, head)
	for _, p := range inv.Packages {
		r := head
		r.Package, r.Version, r.Arch = p.Name, p.Version, p.Arch
		r.UpdateVersion, r.UpdateType, r.CVEs = p.UpdateVersion, p.UpdateType, p.CVEs
		rows = append(rows, r)
	}
	return rows
}

// insertInventory inserts the reports into instance_inventory, as
// insertEach does: a report the store refuses alone is a dead letter.
func (ix *Indexer) insertInventory(ctx context.Context, reps []inventoryReport) ([]*schemas.DeadLetter, error) {
	return insertEach(ctx, ix, "instance_inventory", reps,
		func(rs []inventoryReport) error {
			var rows []clickhouse.InventoryRow
			for _, r := range rs {
				rows = append(rows, r.rows...)
			}
			return ix.eng.InsertInventory(ctx, clickhouse.InventoryToken(rows), rows)
		},
		func(r *inventoryReport, err error) *schemas.DeadLetter {
			return ix.deadLetter(ReasonInsertRejected, err, r.payload, r.host, r.source)
		})
}
