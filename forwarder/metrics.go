package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the forwarder's Prometheus series, labelled by destination.
type metrics struct {
	sent          *prometheus.CounterVec
	failed        *prometheus.CounterVec
	resent        *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	reconnects    *prometheus.CounterVec
	connectErrors *prometheus.CounterVec
	parts         *prometheus.CounterVec
	split         *prometheus.CounterVec
	filtered      *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	commitErrors  *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	oldestAge     *prometheus.GaugeVec
	inFlight      *prometheus.GaugeVec
	writeSeconds  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "auditpipe", "forwarder"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, append([]string{"destination"}, labels...))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{"destination"})
	}
	m := &metrics{
		sent:          counter("messages_sent_total", "Syslog messages written to the SIEM connection, parts and re-sent duplicates included."),
		failed:        counter("messages_failed_total", "Messages whose delivery failed with the connection (they are sent again, never dropped)."),
		resent:        counter("messages_resent_total", "Messages written again after a reconnect (possible duplicates at the SIEM)."),
		bytes:         counter("sent_bytes_total", "Framed bytes written to the SIEM connection."),
		reconnects:    counter("reconnects_total", "Connections re-established after a failure."),
		connectErrors: counter("connect_errors_total", "Failed attempts to connect or complete the TLS handshake."),
		parts:         counter("parts_total", "Messages that are parts of a split oversize event."),
		split:         counter("events_split_total", "Oversize events split into parts."),
		filtered:      counter("events_filtered_total", "Events the destination's filter skipped (committed, not sent)."),
		deadLettered:  counter("events_dead_lettered_total", "Events written to the dead-letter topic instead of the SIEM.", "reason"),
		commitErrors:  counter("commit_errors_total", "Failed Kafka offset commits (retried with the next commit)."),
		lag:           gauge("consumer_lag_messages", "Kafka consumer lag of the destination's group, as last reported by the reader."),
		oldestAge:     gauge("oldest_unsent_age_seconds", "Age of the oldest event fetched from Kafka and not settled at the SIEM yet; 0 when none."),
		inFlight:      gauge("in_flight_messages", "Events written or being written and not settled yet (the in-flight window's depth)."),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "write_duration_seconds",
			Help:    "Time to write one flush of buffered messages to the SIEM connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"destination"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.resent, m.bytes, m.reconnects, m.connectErrors, m.parts, m.split,
			m.filtered, m.deadLettered, m.commitErrors, m.lag, m.oldestAge, m.inFlight, m.writeSeconds)
	}
	return m
}

// destMetrics are the series of one destination.
type destMetrics struct {
	sent, failed, resent, bytes, reconnects, connectErrors prometheus.Counter
	parts, split, filtered, commitErrors                   prometheus.Counter
	deadLettered                                           *prometheus.CounterVec
	lag, oldestAge, inFlight                               prometheus.Gauge
	writeSeconds                                           prometheus.Observer
}

// Dead-letter reasons.
const (
	reasonDecode    = "decode"
	reasonInvalid   = "invalid_event"
	reasonOversize  = "oversize_header"
	reasonRendering = "render"
)

func (m *metrics) forDestination(name string) *destMetrics {
	dl := m.deadLettered.MustCurryWith(prometheus.Labels{"destination": name})
	for _, r := range []string{reasonDecode, reasonInvalid, reasonOversize, reasonRendering} {
		dl.WithLabelValues(r) // initialise the series at 0
	}
	return &destMetrics{
		sent:          m.sent.WithLabelValues(name),
		failed:        m.failed.WithLabelValues(name),
		resent:        m.resent.WithLabelValues(name),
		bytes:         m.bytes.WithLabelValues(name),
		reconnects:    m.reconnects.WithLabelValues(name),
		connectErrors: m.connectErrors.WithLabelValues(name),
		parts:         m.parts.WithLabelValues(name),
		split:         m.split.WithLabelValues(name),
		filtered:      m.filtered.WithLabelValues(name),
		commitErrors:  m.commitErrors.WithLabelValues(name),
		deadLettered:  dl,
		lag:           m.lag.WithLabelValues(name),
		oldestAge:     m.oldestAge.WithLabelValues(name),
		inFlight:      m.inFlight.WithLabelValues(name),
		writeSeconds:  m.writeSeconds.WithLabelValues(name),
	}
}
