-- Shop-assistant customer service: support tickets opened for a customer, and the loyalty points ledger.
--
-- `tickets` (migration 0001, 0005) gains what a customer's support request carries: the customer it is for, a
-- subject and a description. The deviation workflow's tickets (one per order, summary only) leave them empty. A
-- ticket opened through the API is attributed like every ledger row (actor = the key's name) and written once per
-- idempotency key.
--
-- `loyalty_transactions` is the ledger of every change of `customers.loyalty_points` made through the API: the
-- signed change, the balance it left, why and who, written in the same transaction as the change (which locks
-- the customer's row first, so concurrent changes queue and none is lost). Its idempotency key (the client's, or
-- one per request) is unique, so a retried request finds its first transaction instead of applying it twice.

ALTER TABLE tickets ADD COLUMN IF NOT EXISTS customer_id integer REFERENCES customers;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS subject text CHECK (char_length(subject) BETWEEN 1 AND 200);
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS description text CHECK (char_length(description) BETWEEN 1 AND 5000);
CREATE INDEX IF NOT EXISTS tickets_customer_idx ON tickets (customer_id, created_at) WHERE customer_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS loyalty_transactions (
    transaction_id    bigserial PRIMARY KEY,
    idempotency_key   text NOT NULL UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    task_id           uuid,
    customer_id       integer NOT NULL REFERENCES customers,
    kind              text NOT NULL CHECK (kind IN ('earn', 'redeem')),
    points            integer NOT NULL CHECK (points > 0),
    delta             integer NOT NULL CHECK ((kind = 'earn' AND delta = points) OR (kind = 'redeem' AND delta = -points)),
    balance_before    integer NOT NULL CHECK (balance_before >= 0),
    balance_after     integer NOT NULL CHECK (balance_after >= 0 AND balance_after = balance_before + delta),
    reason            text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    actor             text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS loyalty_transactions_customer_idx ON loyalty_transactions (customer_id, created_at);
