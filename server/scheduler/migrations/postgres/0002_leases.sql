-- Leases (JobStore::Claim, RenewLease, RequeueExpired): the attempt is the fencing token of a
-- run, owner the worker that holds it, lease_expires_ms when the run counts as abandoned
-- (the database's clock, so replicas' clocks may differ).
ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_leases ON jobs (state, lease_expires_ms);
