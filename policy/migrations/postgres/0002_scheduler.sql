-- The scheduler (policy/scheduler), PostgreSQL: managed instances and their
-- groups, scheduled jobs, their executions (one a firing) and work
-- requests (one per target per execution) with their logs. Documents
-- beside the columns queries filter on, times in Unix milliseconds, as in
-- 0001. Every change of a work request locks its execution's row first.
CREATE TABLE managed_instances (
  id TEXT PRIMARY KEY,
  compartment_id TEXT NOT NULL REFERENCES compartments(id),
  host TEXT NOT NULL UNIQUE,
  resource_id TEXT REFERENCES resources(id),
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX managed_instances_compartment ON managed_instances(compartment_id);
CREATE INDEX managed_instances_resource ON managed_instances(resource_id);

CREATE TABLE instance_groups (
  id TEXT PRIMARY KEY,
  compartment_id TEXT NOT NULL REFERENCES compartments(id),
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX instance_groups_compartment ON instance_groups(compartment_id);

-- position keeps the members in the order they were given (the order
-- of dispatch).
CREATE TABLE instance_group_members (
  group_id TEXT NOT NULL REFERENCES instance_groups(id),
  instance_id TEXT NOT NULL REFERENCES managed_instances(id),
  position INTEGER NOT NULL,
  PRIMARY KEY (group_id, instance_id)
);
CREATE INDEX instance_group_members_instance ON instance_group_members(instance_id);

CREATE TABLE scheduled_jobs (
  id TEXT PRIMARY KEY,
  compartment_id TEXT NOT NULL REFERENCES compartments(id),
  lifecycle_state TEXT NOT NULL,
  next_ms BIGINT,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs(lifecycle_state, next_ms);
CREATE INDEX scheduled_jobs_compartment ON scheduled_jobs(compartment_id);

-- What a job targets (kind instance or group), for the references a
-- delete checks.
CREATE TABLE job_targets (
  job_id TEXT NOT NULL REFERENCES scheduled_jobs(id),
  kind TEXT NOT NULL,
  target_id TEXT NOT NULL,
  PRIMARY KEY (job_id, kind, target_id)
);
CREATE INDEX job_targets_target ON job_targets(kind, target_id);

CREATE TABLE job_executions (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES scheduled_jobs(id),
  trigger_type TEXT NOT NULL,
  scheduled_ms BIGINT NOT NULL,
  state TEXT NOT NULL,
  -- requests_open: it made access requests the scheduler has not yet
  -- completed.
  requests_open BOOLEAN NOT NULL,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
-- A scheduled time fires once, whichever process fires it.
CREATE UNIQUE INDEX job_executions_once ON job_executions(job_id, scheduled_ms) WHERE trigger_type = 'SCHEDULED';
CREATE INDEX job_executions_state ON job_executions(state, requests_open);
CREATE INDEX job_executions_job ON job_executions(job_id, created_ms);

CREATE TABLE work_requests (
  id TEXT PRIMARY KEY,
  execution_id TEXT NOT NULL REFERENCES job_executions(id),
  job_id TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  compartment_id TEXT NOT NULL,
  status TEXT NOT NULL,
  finished_ms BIGINT,
  created_ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX work_requests_execution ON work_requests(execution_id);
CREATE INDEX work_requests_status ON work_requests(status, finished_ms);
CREATE INDEX work_requests_instance ON work_requests(instance_id, created_ms);
CREATE INDEX work_requests_job ON work_requests(job_id, created_ms);

-- Log lines (kind LOG) and errors (kind ERROR, with a code) of a work
-- request, deleted with it.
CREATE TABLE work_request_logs (
  seq BIGSERIAL PRIMARY KEY,
  work_request_id TEXT NOT NULL REFERENCES work_requests(id),
  kind TEXT NOT NULL,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  time_ms BIGINT NOT NULL
);
CREATE INDEX work_request_logs_request ON work_request_logs(work_request_id, kind, seq);
