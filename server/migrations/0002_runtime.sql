-- Graph runtime: an index of threads (listing, search, busy/interrupted status, pending interrupts for the
-- approvals inbox) and the record of runs. The graph state itself lives in LangGraph's checkpoint tables;
-- the index is derived from it at the end of every run and never the other way round.

CREATE TABLE IF NOT EXISTS threads (
    thread_id       text PRIMARY KEY,
    assistant_id    text,
    status          text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    interrupts      jsonb NOT NULL DEFAULT '{}'::jsonb,
    interrupted_at  timestamptz,
    current_run_id  uuid,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS threads_status_idx ON threads (status, updated_at DESC);
CREATE INDEX IF NOT EXISTS threads_metadata_idx ON threads USING gin (metadata jsonb_path_ops);

CREATE TABLE IF NOT EXISTS runs (
    run_id              uuid PRIMARY KEY,
    thread_id           text NOT NULL REFERENCES threads ON DELETE CASCADE,
    assistant_id        text NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'success', 'error', 'interrupted', 'timeout')),
    multitask_strategy  text NOT NULL DEFAULT 'reject',
    kwargs              jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    error               text,
    actor               text,
    owner_key           bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    ended_at            timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS runs_thread_idx ON runs (thread_id, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_active_idx ON runs (status) WHERE status IN ('pending', 'running');
