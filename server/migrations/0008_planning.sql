-- Planning workflow. `plans` indexes the `planning` threads (plan id = thread id) so plans can be listed and
-- filtered by status; the graph writes each status as it reaches it. The plan itself (request, forecasts, lines,
-- reflection, decisions) is the thread's state, and its audit trail is the checkpoint history.
-- Purchase orders and plan promotions name the specialist that proposed them and the policy passages they rest
-- on, like the deviation ledgers; a purchase order's quantity is counted in the inventory's `on_order`.

CREATE TABLE IF NOT EXISTS plans (
    plan_id           text PRIMARY KEY,
    store_id          integer NOT NULL REFERENCES stores,
    horizon_days      integer NOT NULL CHECK (horizon_days > 0),
    status            text NOT NULL DEFAULT 'created'
                      CHECK (status IN ('created', 'pending_approval', 'approved', 'rejected', 'no_action')),
    request           jsonb NOT NULL,
    created_by        text NOT NULL,
    total_cost        numeric(14,2),
    line_count        integer,
    confidence        numeric(4,3),
    decided_by        text,
    decision_comment  text,
    decided_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS plans_status_created_idx ON plans (status, created_at DESC);
CREATE INDEX IF NOT EXISTS plans_created_idx ON plans (created_at DESC);

ALTER TABLE purchase_orders ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE purchase_orders ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX IF NOT EXISTS purchase_orders_thread_idx ON purchase_orders (thread_id);

ALTER TABLE promotions ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE promotions ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX IF NOT EXISTS promotions_thread_idx ON promotions (thread_id);
