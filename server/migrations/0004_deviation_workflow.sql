-- The deviation workflow's data: orders as the scoring pipeline received them, one current prediction and one
-- deviation per order (re-sending an order updates them), restart-safe batch jobs, the event inbox of
-- POST /events, and the deviation's life (escalated added, when its thread started and who resolved it).

-- Every order the pipeline scored, known to the seeded tables or not, under the ids its upstream system uses
-- ("C00123" as well as 17). `data` is the enriched row in the model's canonical column names.
CREATE TABLE IF NOT EXISTS order_inputs (
    order_id       text PRIMARY KEY,
    customer_ref   text,
    data           jsonb NOT NULL,
    source         text NOT NULL CHECK (source IN ('api', 'batch', 'stream', 'agent')),
    batch_job_id   uuid REFERENCES batch_jobs ON DELETE SET NULL,
    known_order    boolean NOT NULL DEFAULT false,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS order_inputs_customer_idx ON order_inputs (customer_ref);

-- One current prediction per order (the latest score replaces the previous one).
CREATE UNIQUE INDEX IF NOT EXISTS predictions_order_key ON predictions (order_id);
DROP INDEX IF EXISTS predictions_order_idx;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS anomaly_score double precision;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS is_anomaly boolean NOT NULL DEFAULT false;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

-- One deviation per order; its thread is started at most once (thread_id set in the same transaction).
CREATE UNIQUE INDEX IF NOT EXISTS deviations_order_key ON deviations (order_id);
DROP INDEX IF EXISTS deviations_order_idx;
ALTER TABLE deviations DROP CONSTRAINT IF EXISTS deviations_status_check;
ALTER TABLE deviations ADD CONSTRAINT deviations_status_check
    CHECK (status IN ('open', 'in_progress', 'awaiting_approval', 'resolved', 'escalated', 'dismissed'));
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS delay_probability double precision;
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS batch_job_id uuid REFERENCES batch_jobs ON DELETE SET NULL;
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS started_at timestamptz;
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS resolved_by text;
CREATE INDEX IF NOT EXISTS deviations_created_idx ON deviations (created_at);

-- Batch jobs keep their input and are claimed with a lease, so a job survives the process that accepted it.
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS input bytea;
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS attempts int NOT NULL DEFAULT 0;
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz;
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS started_at timestamptz;
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS finished_at timestamptz;
ALTER TABLE batch_jobs ADD COLUMN IF NOT EXISTS summary jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX IF NOT EXISTS batch_jobs_open_idx ON batch_jobs (created_at) WHERE status IN ('pending', 'processing');

-- POST /events: each accepted event is a row before the 202; the micro-batcher scores unprocessed rows.
CREATE TABLE IF NOT EXISTS order_events (
    event_id       bigserial PRIMARY KEY,
    payload        jsonb NOT NULL,
    received_by    text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    batch_job_id   uuid REFERENCES batch_jobs ON DELETE SET NULL,
    processed_at   timestamptz
);
CREATE INDEX IF NOT EXISTS order_events_unprocessed_idx ON order_events (event_id) WHERE processed_at IS NULL;
