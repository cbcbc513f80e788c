-- The deviation workflow's action ledgers, completed: every ledger row names the specialist (agent) and the
-- policy passages it relied on (citations), and customers are referred to by a text ref ("17" for a seeded
-- customer, "C00123" for an upstream one) next to the integer id of a seeded customer. Notifications are an
-- outbox (queued until sent; quiet hours push send_after). New ledgers: interactions (log_interaction) and
-- ticket_updates (assign_owner, flag_priority). Rows are still written once per idempotency key.

-- refunds ---------------------------------------------------------------------------------------------------
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS customer_ref text;
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX IF NOT EXISTS refunds_order_idx ON refunds (order_id);

-- store credits: external customers have no integer id ----------------------------------------------------
ALTER TABLE store_credits ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS customer_ref text;
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'refund_alternative';
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS reason text;
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE store_credits ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE store_credits SET customer_ref = customer_id::text WHERE customer_ref IS NULL AND customer_id IS NOT NULL;
ALTER TABLE store_credits DROP CONSTRAINT IF EXISTS store_credits_kind_check;
ALTER TABLE store_credits ADD CONSTRAINT store_credits_kind_check CHECK (kind IN ('goodwill', 'refund_alternative'));
ALTER TABLE store_credits DROP CONSTRAINT IF EXISTS store_credits_customer_check;
ALTER TABLE store_credits ADD CONSTRAINT store_credits_customer_check
    CHECK (customer_id IS NOT NULL OR customer_ref IS NOT NULL);
CREATE INDEX IF NOT EXISTS store_credits_order_idx ON store_credits (order_id);
CREATE INDEX IF NOT EXISTS store_credits_customer_ref_idx ON store_credits (customer_ref);

-- notifications: an outbox ----------------------------------------------------------------------------------
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS customer_ref text;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'status_update';
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS subject text;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'queued';
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS send_after timestamptz;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS sent_at timestamptz;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE notifications SET customer_ref = customer_id::text WHERE customer_ref IS NULL AND customer_id IS NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('queued', 'sent', 'failed', 'cancelled'));
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'sms'));
CREATE INDEX IF NOT EXISTS notifications_customer_ref_idx ON notifications (customer_ref, kind, created_at);
CREATE INDEX IF NOT EXISTS notifications_order_idx ON notifications (order_id);
CREATE INDEX IF NOT EXISTS notifications_outbox_idx ON notifications (send_after) WHERE status = 'queued';

-- tickets and shipment changes --------------------------------------------------------------------------------
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS customer_ref text;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS tickets_order_idx ON tickets (order_id, created_at);

ALTER TABLE shipment_changes ADD COLUMN IF NOT EXISTS agent text;
ALTER TABLE shipment_changes ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE shipment_changes ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX IF NOT EXISTS shipment_changes_order_idx ON shipment_changes (order_id, change_type);

-- interactions: what was said to or heard from a customer, or noted about them (log_interaction) -------------
CREATE TABLE IF NOT EXISTS interactions (
    interaction_id   bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    order_id         text,
    customer_ref     text,
    channel          text NOT NULL CHECK (channel IN ('email', 'sms', 'phone', 'chat', 'note')),
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    summary          text NOT NULL,
    actor            text NOT NULL,
    agent            text,
    policy_rule      text NOT NULL,
    citations        jsonb NOT NULL DEFAULT '[]'::jsonb,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS interactions_order_idx ON interactions (order_id, created_at);
CREATE INDEX IF NOT EXISTS interactions_customer_ref_idx ON interactions (customer_ref, created_at);

-- ticket updates: an owner assigned or a priority flagged on an order (and its latest ticket, if any) --------
CREATE TABLE IF NOT EXISTS ticket_updates (
    update_id        bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    order_id         text NOT NULL,
    ticket_id        bigint REFERENCES tickets ON DELETE SET NULL,
    kind             text NOT NULL CHECK (kind IN ('assign_owner', 'flag_priority')),
    owner            text,
    priority         text,
    note             text,
    actor            text NOT NULL,
    agent            text,
    policy_rule      text NOT NULL,
    citations        jsonb NOT NULL DEFAULT '[]'::jsonb,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'assign_owner' AND owner IS NOT NULL) OR (kind = 'flag_priority' AND priority IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS ticket_updates_order_idx ON ticket_updates (order_id, created_at);
