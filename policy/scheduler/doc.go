// Package scheduler is the job scheduler of the policy service: managed
// instances and instance groups, scheduled jobs (OCI OS Management's
// ScheduledJob: ONETIME or RECURRING by HOUR, DAY, WEEK or MONTH in a
// named zone; INSTALL, UPDATE, REMOVE, UPDATEALL), their executions and
// work requests (one per target per execution, ACCEPTED → IN_PROGRESS →
// SUCCEEDED, FAILED, CANCELING, CANCELED), dispatched to the agents on
// opctl.dispatch.v1 with the rate control of AWS maintenance windows
// (max concurrency, max errors, a cutoff). A run on an instance of a
// governed resource first gets an access request from the policy service,
// under the scheduler's machine identity, and waits for its grant.
//
// Its state is in the policy store (migration 0002_scheduler), changed
// through policy.Tx, so a work request's change, the signed dispatch it
// sends and its lifecycle event on opctl.lifecycle.v1 commit together in
// the policy outbox. Tick does the time-driven work and is safe from
// several processes at once. See README.md.
package scheduler
