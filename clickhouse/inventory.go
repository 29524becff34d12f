package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// InventoryRow is one row of instance_inventory (migration 0009): the
// header row of an instance's inventory report (Package empty) or one of
// its installed packages with the available update.
type InventoryRow struct {
	Time            time.Time
	InstanceID      string
	InstanceName    string
	CompartmentID   string
	CompartmentPath []string
	GroupIDs        []string
	OSFamily        string
	Package         string
	Version         string
	Arch            string
	UpdateVersion   string
	UpdateType      string
	CVEs            []string
	// Partition and Offset locate the Kafka message the row came from
	// (not stored: the deduplication token is made of them); -1 when none.
	Partition int32
	Offset    int64
}

// InventoryToken is the deduplication token of an insert of rows: a
// digest of their instance, time and package, so the same rows retried
// give the same token.
func InventoryToken(rows []InventoryRow) string {
	h := sha256.New()
	var b []byte
	for i := range rows {
		r := &rows[i]
		b = append(b[:0], r.InstanceID...)
		b = append(b, 0)
		b = strconv.AppendInt(b, r.Time.UnixMilli(), 10)
		b = append(b, 0)
		b = append(b, r.Package...)
		b = append(b, 0)
		h.Write(b)
	}
	return "inv-" + hex.EncodeToString(h.Sum(nil)[:16])
}

const inventoryColumns = "time, instance_id, instance_name, compartment_id, compartment_path, group_ids, os_family, " +
	"package, version, arch, update_version, update_type, cves"

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertInventory implements Engine: the rows as JSONEachRow.
func (e *Embedded) InsertInventory(_ context.Context, token string, rows []InventoryRow) error {
	b := fmt.Appendf(make([]byte, 0, 160+256*len(rows)), "INSERT INTO instance_inventory SETTINGS insert_deduplication_token = %s, "+
		"input_format_skip_unknown_fields = 0 FORMAT JSONEachRow\n", QuoteString(token))
	for i := range rows {
		r := &rows[i]
		b = append(b, `{"time":"`...)
		b = r.Time.UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
		b = append(b, '"')
		for _, kv := range [...]struct{ k, v string }{
			{"instance_id", r.InstanceID}, {"instance_name", r.InstanceName}, {"compartment_id", r.CompartmentID},
			{"os_family", r.OSFamily}, {"package", r.Package}, {"version", r.Version}, {"arch", r.Arch},
			{"update_version", r.UpdateVersion}, {"update_type", r.UpdateType},
		} {
			b = append(b, ',', '"')
			b = append(b, kv.k...)
			b = append(b, '"', ':')
			b = appendJSONString(b, kv.v)
		}
		for _, kv := range [...]struct {
			k string
			v []string
		}{{"compartment_path", r.CompartmentPath}, {"group_ids", r.GroupIDs}, {"cves", r.CVEs}} {
			b = append(b, ',', '"')
			b = append(b, kv.k...)
			b = append(b, '"', ':')
			j, _ := json.Marshal(nonNil(kv.v)) // strings always encode
			b = append(b, j...)
		}
		b = append(b, '}', '\n')
	}
	b = append(b, 0)
	_, err := e.sess.QueryBytes(b, "")
	return err
}

// InsertInventory implements Engine with a typed batch.
func (s *Server) InsertInventory(ctx context.Context, token string, rows []InventoryRow) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO instance_inventory ("+inventoryColumns+")")
	if err != nil {
		return err
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		r := &rows[i]
		if err := b.Append(r.Time.UTC(), r.InstanceID, r.InstanceName, r.CompartmentID, nonNil(r.CompartmentPath), nonNil(r.GroupIDs),
			r.OSFamily, r.Package, r.Version, r.Arch, r.UpdateVersion, r.UpdateType, nonNil(r.CVEs)); err != nil {
			return fmt.Errorf("row %d (instance %s, package %q): %w: %w", i, r.InstanceID, r.Package, errRowAppend, err)
		}
	}
	return b.Send()
}
