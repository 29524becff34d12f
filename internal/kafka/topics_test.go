package kafka_test

import (
	"context"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// TestPipelineTopicsCompacted: the topics whose last record per key is
// the state (grants keyed by login, assignments keyed by resource, as
// DESIGN.md says) are created with cleanup.policy=compact, the others
// with the broker's default (delete); asked of the broker itself.
func TestPipelineTopicsCompacted(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 2)
	want := map[string]string{
		kafka.TopicGrants: "compact", kafka.TopicAssignments: "compact",
		kafka.TopicAudit: "delete", kafka.TopicLifecycle: "delete", kafka.TopicDeadLetter: "delete",
		kafka.TopicDispatch: "delete", kafka.TopicAgent: "delete",
	}
	if len(want) != len(kafka.PipelineTopics(2)) {
		t.Fatalf("%d pipeline topics, the test knows %d", len(kafka.PipelineTopics(2)), len(want))
	}
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for topic, policy := range want {
		resp, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{
			{ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		got := "delete" // the broker's default when the topic sets none
		for _, r := range resp.Resources {
			if r.Error != nil {
				t.Fatalf("%s: %v", topic, r.Error)
			}
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "cleanup.policy" && e.ConfigValue != "" {
					got = e.ConfigValue
				}
			}
		}
		if got != policy {
			t.Errorf("%s: cleanup.policy=%s, want %s", topic, got, policy)
		}
	}
}
