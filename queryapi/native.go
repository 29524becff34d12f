package queryapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Protocol revisions that change the Native format's block layout
// (ClickHouse src/Core/ProtocolDefines.h).
const (
	// revisionLowCardinality: clients older than this get LowCardinality
	// columns as their plain type; not supported here.
	revisionLowCardinality = 54405
	// revisionCustomSerialization: each column header carries a
	// "has custom serialization" byte.
	revisionCustomSerialization = proto.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION
)

// nativeForRevision rewrites Native output as chDB writes it (protocol
// revision 0: no block info, no serialization byte) in the layout of the
// protocol revision a client asked for with client_protocol_version, as a
// ClickHouse server would write it: every block starts with its block info
// (revision > 0) and every column header ends in a "no custom
// serialization" byte (revision >= 54454). clickhouse-go always asks for
// its own revision, clickhouse-connect for 54405 or 0.
//
// The blocks are decoded and encoded again with clickhouse-go's own column
// codecs, so a type those cannot read is an error, not a garbled answer.
func nativeForRevision(data []byte, revision uint64) ([]byte, error) {
	if revision == 0 {
		return data, nil
	}
	if revision < revisionLowCardinality {
		return nil, fmt.Errorf("client_protocol_version %d is not supported (0 or at least %d)", revision, revisionLowCardinality)
	}
	r := chproto.NewReader(bytes.NewReader(data))
	out := new(chproto.Buffer)
	sc := &column.ServerContext{Timezone: time.UTC}
	for {
		b := proto.Block{ServerContext: sc}
		if err := b.Decode(r, 0); err != nil {
			if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return out.Buf, nil
			}
			return nil, fmt.Errorf("re-encode Native for client_protocol_version %d: %w", revision, err)
		}
		if err := encodeBlock(out, &b, revision); err != nil {
			return nil, fmt.Errorf("re-encode Native for client_protocol_version %d: %w", revision, err)
		}
	}
}

// encodeBlock writes b as a ClickHouse server writes a Native block for a
// client of revision: the column data (and its state prefix) only when the
// block has rows, as NativeWriter does; clickhouse-go's Block.Encode writes
// a LowCardinality state prefix even for an empty block, which its own
// decoder then does not expect.
func encodeBlock(buf *chproto.Buffer, b *proto.Block, revision uint64) error {
	if err := b.EncodeHeader(buf, revision); err != nil {
		return err
	}
	rows := b.Rows()
	for _, c := range b.Columns {
		buf.PutString(c.Name())
		buf.PutString(string(c.Type()))
		if revision >= revisionCustomSerialization {
			buf.PutBool(false)
		}
		if rows == 0 {
			continue
		}
		if cs, ok := c.(column.CustomSerialization); ok {
			if err := cs.WriteStatePrefix(buf); err != nil {
				return fmt.Errorf("column %s: %w", c.Name(), err)
			}
		}
		c.Encode(buf)
	}
	return nil
}
