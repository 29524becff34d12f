-- The policy store, SQLite. Every object is a JSON document (doc) with
-- the columns its queries filter and sort on beside it; times are Unix
-- milliseconds. version is the object's ETag.
CREATE TABLE compartments (
  id TEXT PRIMARY KEY,
  parent_id TEXT REFERENCES compartments(id),
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX compartments_parent ON compartments(parent_id);

CREATE TABLE resources (
  id TEXT PRIMARY KEY,
  compartment_id TEXT NOT NULL REFERENCES compartments(id),
  resource_type TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX resources_compartment ON resources(compartment_id);

CREATE TABLE operator_controls (
  id TEXT PRIMARY KEY,
  compartment_id TEXT NOT NULL REFERENCES compartments(id),
  resource_type TEXT NOT NULL,
  lifecycle_state TEXT NOT NULL,
  is_default BOOLEAN NOT NULL,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX operator_controls_compartment ON operator_controls(compartment_id);

CREATE TABLE assignments (
  id TEXT PRIMARY KEY,
  operator_control_id TEXT NOT NULL REFERENCES operator_controls(id),
  resource_id TEXT NOT NULL REFERENCES resources(id),
  compartment_id TEXT NOT NULL,
  lifecycle_state TEXT NOT NULL,
  is_enforced_always BOOLEAN NOT NULL,
  from_ms BIGINT,
  to_ms BIGINT,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX assignments_resource ON assignments(resource_id, lifecycle_state);
CREATE INDEX assignments_control ON assignments(operator_control_id, lifecycle_state);

CREATE TABLE access_requests (
  id TEXT PRIMARY KEY,
  resource_id TEXT NOT NULL REFERENCES resources(id),
  compartment_id TEXT NOT NULL,
  requestor_id TEXT NOT NULL,
  operator_control_id TEXT NOT NULL REFERENCES operator_controls(id),
  lifecycle_state TEXT NOT NULL,
  start_ms BIGINT,
  expiry_ms BIGINT,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX access_requests_state ON access_requests(lifecycle_state, expiry_ms);
CREATE INDEX access_requests_resource ON access_requests(resource_id);
CREATE INDEX access_requests_requestor ON access_requests(requestor_id);

CREATE TABLE grants (
  login_id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES access_requests(id),
  resource_id TEXT NOT NULL,
  revoked_ms BIGINT,
  doc TEXT NOT NULL
);

CREATE TABLE history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  object_type TEXT NOT NULL,
  object_id TEXT NOT NULL,
  time_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  action TEXT NOT NULL,
  comment TEXT NOT NULL
);
CREATE INDEX history_object ON history(object_type, object_id, seq);

CREATE TABLE interactions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id TEXT NOT NULL REFERENCES access_requests(id),
  user_id TEXT NOT NULL,
  user_type TEXT NOT NULL,
  message TEXT NOT NULL,
  time_ms BIGINT NOT NULL
);
CREATE INDEX interactions_request ON interactions(request_id, seq);

-- What the relay publishes: written in the transaction of the change it
-- reports, published in id order, marked with the time it was.
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  msg_key BLOB,
  msg_value BLOB,
  headers TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  published_ms BIGINT
);
CREATE INDEX outbox_pending ON outbox(id) WHERE published_ms IS NULL;
