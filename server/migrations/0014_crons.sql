-- Crons (LangGraph's cron API): a schedule (5-field cron expression, in `timezone`, UTC when null) on which a run
-- starts. A cron with a `thread_id` runs on that thread (and goes with it); one without starts each run on a new
-- thread, deleted after the run unless `on_run_completed` is 'keep'. `payload` is the run's body (as POST
-- /threads/{id}/runs takes it), `metadata` the cron's own (given to its runs too). The run starts as whoever created
-- the cron: `created_by` is the key name, `created_role` its role then. `next_run_date` is the next firing while the
-- cron is enabled (null when disabled, or when its `end_time` has passed). The scheduler of any server process
-- claims a due cron row (FOR UPDATE SKIP LOCKED) in the transaction that queues its run and advances
-- `next_run_date`, so each firing starts one run. `last_run_at` is the last firing, `last_run_id` the last run a firing
-- started, `last_error` why the last firing started none (null when it started its run).

CREATE TABLE IF NOT EXISTS crons (
    cron_id           uuid PRIMARY KEY,
    assistant_id      text NOT NULL,
    thread_id         text REFERENCES threads ON DELETE CASCADE,
    schedule          text NOT NULL,
    timezone          text,
    payload           jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    on_run_completed  text CHECK (on_run_completed IN ('delete', 'keep')),
    enabled           boolean NOT NULL DEFAULT true,
    end_time          timestamptz,
    next_run_date     timestamptz,
    created_by        text NOT NULL,
    created_role      text NOT NULL CHECK (created_role IN ('viewer', 'operator', 'approver', 'admin')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_run_id       uuid,
    last_run_at       timestamptz,
    last_error        text
);
CREATE INDEX IF NOT EXISTS crons_due_idx ON crons (next_run_date) WHERE enabled;
CREATE INDEX IF NOT EXISTS crons_thread_idx ON crons (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS crons_assistant_idx ON crons (assistant_id, created_at DESC);
CREATE INDEX IF NOT EXISTS crons_metadata_idx ON crons USING gin (metadata jsonb_path_ops);
