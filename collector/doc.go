// Package collector turns auditd records into the contract events of
// package schemas and pushes them to Kafka.
//
// The work is split in stages, each its own package: auditlog parses lines,
// assemble groups records into events, builder interprets and classifies
// them. Decoder chains the three for any line source (the parse command, a
// benchmark, the collector); Collector adds the inputs (a followed log file
// with a durable checkpoint, stdin as an auditd plugin, netlink), batching,
// the Kafka producer, the disk spool and metrics.
package collector
