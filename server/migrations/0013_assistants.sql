-- Assistants created through the API: a graph of langgraph.json with its own config, context, metadata, name and
-- description. Every change writes a new row of `assistant_versions` (numbered from 1); `assistants` holds the
-- version in force (the newest, unless one was pinned with POST /assistants/{id}/latest). The graphs of
-- langgraph.json themselves are the system assistants: they are not rows here (they come from the file at start).
-- `created_by` is the key name of whoever created the assistant. Deleting an assistant deletes its versions.

CREATE TABLE IF NOT EXISTS assistants (
    assistant_id  uuid PRIMARY KEY,
    graph_id      text NOT NULL,
    name          text NOT NULL,
    description   text,
    config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    context       jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    version       integer NOT NULL DEFAULT 1,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS assistants_graph_idx ON assistants (graph_id, created_at DESC);
CREATE INDEX IF NOT EXISTS assistants_metadata_idx ON assistants USING gin (metadata jsonb_path_ops);

CREATE TABLE IF NOT EXISTS assistant_versions (
    assistant_id  uuid NOT NULL REFERENCES assistants ON DELETE CASCADE,
    version       integer NOT NULL,
    graph_id      text NOT NULL,
    name          text NOT NULL,
    description   text,
    config        jsonb NOT NULL,
    context       jsonb NOT NULL,
    metadata      jsonb NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assistant_id, version)
);

-- The config of a thread's last run (what a graph built from its config, a "graph factory", is rebuilt with when
-- the thread's state is read or written outside a run).
ALTER TABLE threads ADD COLUMN IF NOT EXISTS config jsonb NOT NULL DEFAULT '{}'::jsonb;
