package kafka

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake), the
// default broker of the all-in-one and of unit tests. With a data directory
// it persists its log, so a restarted all-in-one finds its topics, records
// and committed offsets again.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts the broker on a loopback port (0 = any free port).
// dataDir may be empty for a memory-only broker.
func StartEmbedded(port int, dataDir string, partitions int) (*Embedded, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start embedded broker: %w", err)
	}
	return &Embedded{cluster: c}, nil
}

// Brokers returns the broker's listen addresses.
func (e *Embedded) Brokers() []string { return e.cluster.ListenAddrs() }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }

// Port returns the broker's listen port: the one it chose when started on
// port 0, to start it again on after Close.
func (e *Embedded) Port() int {
	_, p, err := net.SplitHostPort(e.cluster.ListenAddrs()[0])
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
