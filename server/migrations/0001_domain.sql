-- Retail domain schema: reference data, facts, scoring, deviations and the action ledgers.
-- Every ledger row carries an idempotency key (unique), the actor and the policy rule that allowed it.

CREATE TABLE IF NOT EXISTS dataset_info (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    seed          integer      NOT NULL,
    scale         text         NOT NULL,
    as_of         date         NOT NULL,
    generator     text         NOT NULL,
    row_counts    jsonb        NOT NULL,
    seeded_at     timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stores (
    store_id      integer PRIMARY KEY,
    name          text    NOT NULL,
    city          text    NOT NULL,
    region        text    NOT NULL,
    size_sqft     integer NOT NULL CHECK (size_sqft > 0),
    opened_on     date    NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    sku           integer PRIMARY KEY,
    name          text    NOT NULL,
    category      text    NOT NULL,
    unit_cost     numeric(10,2) NOT NULL CHECK (unit_cost >= 0),
    unit_price    numeric(10,2) NOT NULL CHECK (unit_price >= 0),
    weight_g      integer NOT NULL CHECK (weight_g > 0),
    importance    text    NOT NULL CHECK (importance IN ('low', 'medium', 'high'))
);

CREATE TABLE IF NOT EXISTS inventory (
    store_id        integer NOT NULL REFERENCES stores,
    sku             integer NOT NULL REFERENCES products,
    on_hand         integer NOT NULL CHECK (on_hand >= 0),
    on_order        integer NOT NULL DEFAULT 0 CHECK (on_order >= 0),
    lead_time_days  integer NOT NULL CHECK (lead_time_days > 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, sku)
);

CREATE TABLE IF NOT EXISTS sales_daily (
    date          date    NOT NULL,
    store_id      integer NOT NULL REFERENCES stores,
    sku           integer NOT NULL REFERENCES products,
    units         integer NOT NULL CHECK (units >= 0),
    price         numeric(10,2) NOT NULL CHECK (price >= 0),
    discount      numeric(4,3)  NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount < 1),
    PRIMARY KEY (store_id, sku, date)
);
CREATE INDEX IF NOT EXISTS sales_daily_date_idx ON sales_daily (date);

CREATE TABLE IF NOT EXISTS customers (
    customer_id     integer PRIMARY KEY,
    name            text    NOT NULL,
    email           text    NOT NULL UNIQUE,
    gender          text    NOT NULL CHECK (gender IN ('F', 'M')),
    city            text    NOT NULL,
    segment         text    NOT NULL,
    prior_purchases integer NOT NULL CHECK (prior_purchases >= 0),
    rating          smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    care_calls      integer NOT NULL CHECK (care_calls >= 0),
    loyalty_points  integer NOT NULL CHECK (loyalty_points >= 0),
    created_at      date    NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    order_id               text PRIMARY KEY,
    customer_id            integer NOT NULL REFERENCES customers,
    store_id               integer REFERENCES stores,
    sku                    integer REFERENCES products,
    quantity               integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    order_date             date    NOT NULL,
    promised_delivery_date date    NOT NULL,
    ship_date              date,
    delivery_date          date,
    warehouse_block        text    NOT NULL CHECK (warehouse_block IN ('A', 'B', 'C', 'D', 'E', 'F')),
    mode_of_shipment       text    NOT NULL CHECK (mode_of_shipment IN ('Flight', 'Road', 'Ship')),
    carrier_name           text    NOT NULL,
    tracking_id            text    NOT NULL,
    customer_care_calls    integer NOT NULL CHECK (customer_care_calls >= 0),
    customer_rating        smallint NOT NULL CHECK (customer_rating BETWEEN 1 AND 5),
    prior_purchases        integer NOT NULL CHECK (prior_purchases >= 0),
    gender                 text    NOT NULL CHECK (gender IN ('F', 'M')),
    product_importance     text    NOT NULL CHECK (product_importance IN ('low', 'medium', 'high')),
    cost_of_product        numeric(10,2) NOT NULL CHECK (cost_of_product >= 0),
    discount_offered       integer NOT NULL CHECK (discount_offered BETWEEN 0 AND 100),
    weight_in_gms          integer NOT NULL CHECK (weight_in_gms > 0),
    order_value            numeric(12,2) NOT NULL CHECK (order_value >= 0),
    payment_status         text    NOT NULL CHECK (payment_status IN ('paid', 'pending', 'refunded')),
    order_status           text    NOT NULL CHECK (order_status IN ('processing', 'shipped', 'delivered', 'delayed')),
    is_late                boolean
);
CREATE INDEX IF NOT EXISTS orders_order_date_idx ON orders (order_date);
CREATE INDEX IF NOT EXISTS orders_customer_idx ON orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_status_idx ON orders (order_status);

CREATE TABLE IF NOT EXISTS pricing_rules (
    rule_id       integer PRIMARY KEY,
    scope         text    NOT NULL CHECK (scope IN ('category', 'sku')),
    category      text,
    sku           integer REFERENCES products,
    rule_type     text    NOT NULL,
    min_margin    numeric(4,3) NOT NULL CHECK (min_margin >= 0 AND min_margin < 1),
    max_discount  numeric(4,3) NOT NULL CHECK (max_discount >= 0 AND max_discount < 1),
    valid_from    date    NOT NULL,
    valid_to      date,
    active        boolean NOT NULL DEFAULT true,
    CHECK ((scope = 'category' AND category IS NOT NULL) OR (scope = 'sku' AND sku IS NOT NULL))
);

-- Scoring pipeline ------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS batch_jobs (
    batch_job_id   uuid PRIMARY KEY,
    source         text NOT NULL,
    filename       text,
    status         text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    rows_total     integer NOT NULL DEFAULT 0,
    rows_ok        integer NOT NULL DEFAULT 0,
    rows_failed    integer NOT NULL DEFAULT 0,
    errors         jsonb   NOT NULL DEFAULT '[]'::jsonb,
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS predictions (
    prediction_id      bigserial PRIMARY KEY,
    order_id           text NOT NULL,
    batch_job_id       uuid REFERENCES batch_jobs ON DELETE CASCADE,
    source             text NOT NULL CHECK (source IN ('api', 'batch', 'stream', 'agent')),
    delay_probability  double precision NOT NULL CHECK (delay_probability BETWEEN 0 AND 1),
    severity           text NOT NULL CHECK (severity IN ('none', 'info', 'warning', 'critical')),
    model_version      text NOT NULL,
    top_features       jsonb NOT NULL DEFAULT '[]'::jsonb,
    features           jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS predictions_order_idx ON predictions (order_id);
CREATE INDEX IF NOT EXISTS predictions_created_idx ON predictions (created_at);
CREATE INDEX IF NOT EXISTS predictions_batch_idx ON predictions (batch_job_id);

CREATE TABLE IF NOT EXISTS deviations (
    deviation_id   uuid PRIMARY KEY,
    prediction_id  bigint REFERENCES predictions ON DELETE SET NULL,
    order_id       text NOT NULL,
    severity       text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    reasons        jsonb NOT NULL DEFAULT '[]'::jsonb,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'awaiting_approval', 'resolved', 'dismissed')),
    thread_id      text,
    resolution     jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deviations_status_idx ON deviations (status, severity);
CREATE INDEX IF NOT EXISTS deviations_order_idx ON deviations (order_id);

-- Action ledgers --------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS refunds (
    refund_id        bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    order_id         text NOT NULL,
    amount           numeric(12,2) NOT NULL CHECK (amount > 0),
    reason           text NOT NULL,
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS store_credits (
    credit_id        bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    customer_id      integer NOT NULL REFERENCES customers,
    order_id         text,
    amount           numeric(12,2) NOT NULL CHECK (amount > 0),
    expires_on       date NOT NULL,
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS notifications (
    notification_id  bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    customer_id      integer REFERENCES customers,
    order_id         text,
    channel          text NOT NULL,
    template         text NOT NULL,
    body             text NOT NULL,
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notifications_customer_idx ON notifications (customer_id, created_at);

CREATE TABLE IF NOT EXISTS tickets (
    ticket_id        bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    order_id         text,
    team             text NOT NULL,
    priority         text NOT NULL,
    summary          text NOT NULL,
    status           text NOT NULL DEFAULT 'open',
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shipment_changes (
    change_id        bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    order_id         text NOT NULL,
    change_type      text NOT NULL,
    from_value       text,
    to_value         text,
    cost             numeric(12,2) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS purchase_orders (
    po_id            bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    store_id         integer NOT NULL REFERENCES stores,
    sku              integer NOT NULL REFERENCES products,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_cost        numeric(10,2) NOT NULL CHECK (unit_cost >= 0),
    expected_on      date,
    status           text NOT NULL DEFAULT 'placed',
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS promotions (
    promotion_id     bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    store_id         integer NOT NULL REFERENCES stores,
    sku              integer NOT NULL REFERENCES products,
    discount         numeric(4,3) NOT NULL CHECK (discount > 0 AND discount < 1),
    starts_on        date NOT NULL,
    ends_on          date NOT NULL CHECK (ends_on >= starts_on),
    source           text NOT NULL CHECK (source IN ('history', 'plan')),
    actor            text NOT NULL,
    policy_rule      text NOT NULL,
    thread_id        text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS promotions_store_sku_idx ON promotions (store_id, sku, starts_on);

CREATE TABLE IF NOT EXISTS feedback (
    feedback_id      bigserial PRIMARY KEY,
    thread_id        text NOT NULL,
    run_id           text,
    rating           smallint CHECK (rating BETWEEN -1 AND 5),
    chosen           text,
    rejected         text,
    comment          text,
    actor            text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
