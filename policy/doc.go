// Package policy is the control plane's domain and store: the action
// catalog, compartments, resources, operator controls and their
// assignments, access requests with their state machine, and the grants
// approvals issue. Service holds the rules; Store keeps the state on
// SQLite or PostgreSQL and an outbox of what is to be published (signed
// grants and assignments, lifecycle events), written in the transaction
// of the change. See README.md for the model, the transition table and
// the choices made where the issue is silent.
package policy
