-- The run queue: every run is a row that a worker in any server process claims (FOR UPDATE SKIP LOCKED) and
-- holds with a lease it renews; a run whose lease lapsed (its process died) is queued again and resumed from
-- its last checkpoint, up to RIMAS_RUN_MAX_ATTEMPTS times. run_events keeps a run's SSE events when they must
-- outlive the process that produced them (stream_resumable, or a listener in another process).

ALTER TABLE runs ADD COLUMN IF NOT EXISTS attempt int NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS not_before timestamptz;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS accepted_by bigint;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS persist_events boolean NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cancel_action text CHECK (cancel_action IN ('interrupt', 'rollback'));
ALTER TABLE runs ADD COLUMN IF NOT EXISTS webhook text;
CREATE INDEX IF NOT EXISTS runs_pending_idx ON runs (created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS run_events (
    run_id      uuid NOT NULL REFERENCES runs ON DELETE CASCADE,
    seq         int NOT NULL,
    event       text NOT NULL,
    data        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
