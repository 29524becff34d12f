-- Replay protection (SQLite). publish_seqs numbers each key's signed
-- records per topic: the policy service takes the next number in the
-- transaction that writes the record to the outbox (an upsert that locks
-- the row), so a crash before the commit loses the number with the
-- record, and two processes on one database never sign two records with
-- one number. applied_seqs is what a consumer of the policy store
-- applied last per key (the agents' reports and work progress on
-- opctl.agent.v1): the number and the signed payload's SHA-256, hex.
CREATE TABLE publish_seqs (
  topic TEXT NOT NULL,
  msg_key TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY (topic, msg_key)
);

CREATE TABLE applied_seqs (
  consumer TEXT NOT NULL,
  msg_key TEXT NOT NULL,
  seq BIGINT NOT NULL,
  digest TEXT NOT NULL,
  applied_ms BIGINT NOT NULL,
  PRIMARY KEY (consumer, msg_key)
);
