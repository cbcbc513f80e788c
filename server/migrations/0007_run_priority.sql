-- Run priority: workers take the highest priority first, then the oldest. Runs people wait on (streams, waits,
-- approvals) have priority 0; runs the system starts by itself (a batch's deviation threads) have a lower one,
-- so a decision is not queued behind hundreds of them. Runs of one thread still go one at a time, oldest first.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS runs_pending_priority_idx ON runs (priority DESC, created_at) WHERE status = 'pending';
DROP INDEX IF EXISTS runs_pending_idx;
