-- Shop-assistant endpoints: stock adjustments with a ledger, a row version for optimistic updates, and the audit
-- trail of the shop endpoints.
--
-- `inventory.version` counts the writes of a stock row's on-hand quantity: a trigger bumps it on every UPDATE that
-- sets `on_hand`, whoever writes it, so an update conditioned on the version a client read (`expected_version`)
-- is refused once anyone else has changed the stock since. Purchase orders (which change `on_order` only) leave
-- it alone.
--
-- `inventory_adjustments` is the ledger of every on-hand change made through the shop API: the stock before and
-- after, the signed change, why and who, written in the same transaction as the change itself. Its idempotency
-- key (the client's, or one per request) is unique, so a retried request finds its first adjustment instead of
-- applying the change twice.
--
-- `audit_log` is the trail of the shop endpoints (one row per audited request: who, which endpoint, what was
-- asked and what came of it), keyed by the task id the answer carries.

ALTER TABLE inventory ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);

CREATE OR REPLACE FUNCTION inventory_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS inventory_version_on_hand ON inventory;
CREATE TRIGGER inventory_version_on_hand BEFORE UPDATE OF on_hand ON inventory
    FOR EACH ROW EXECUTE FUNCTION inventory_bump_version();

CREATE TABLE IF NOT EXISTS inventory_adjustments (
    adjustment_id     bigserial PRIMARY KEY,
    idempotency_key   text NOT NULL UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    task_id           uuid,
    store_id          integer NOT NULL,
    sku               integer NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('delta', 'set')),
    requested         integer NOT NULL,
    expected_version  bigint,
    before_qty        integer NOT NULL CHECK (before_qty >= 0),
    after_qty         integer NOT NULL CHECK (after_qty >= 0),
    delta             integer NOT NULL CHECK (after_qty = before_qty + delta),
    version           bigint NOT NULL,
    reason            text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    actor             text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, sku) REFERENCES inventory (store_id, sku)
);
CREATE INDEX IF NOT EXISTS inventory_adjustments_item_idx ON inventory_adjustments (store_id, sku, created_at);

CREATE TABLE IF NOT EXISTS audit_log (
    audit_id    bigserial PRIMARY KEY,
    task_id     uuid NOT NULL,
    actor       text NOT NULL,
    endpoint    text NOT NULL,
    event       text NOT NULL CHECK (event IN ('TASK_STARTED', 'TASK_COMPLETED', 'TASK_FAILED', 'TASK_REPLAYED')),
    request     jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_log_task_idx ON audit_log (task_id);
CREATE INDEX IF NOT EXISTS audit_log_created_idx ON audit_log (created_at);
