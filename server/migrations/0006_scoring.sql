-- The scoring pipeline's extra columns and indexes: the order's segments (derived from its stored row) for the
-- KPIs and the deviation filters, what the escalators saw on each prediction, and indexes for the batch views,
-- the rolling windows and the event micro-batcher.

-- Segments and status of the order as the pipeline last received it (kept in step with `data` by PostgreSQL).
ALTER TABLE order_inputs ADD COLUMN IF NOT EXISTS warehouse_block text GENERATED ALWAYS AS (data->>'warehouse_block') STORED;
ALTER TABLE order_inputs ADD COLUMN IF NOT EXISTS mode_of_shipment text GENERATED ALWAYS AS (data->>'mode_of_shipment') STORED;
ALTER TABLE order_inputs ADD COLUMN IF NOT EXISTS product_importance text GENERATED ALWAYS AS (data->>'product_importance') STORED;
ALTER TABLE order_inputs ADD COLUMN IF NOT EXISTS order_status text GENERATED ALWAYS AS (data->>'order_status') STORED;

-- What the escalators saw: the order value used (given, from the seeded order, or estimated) and the detector.
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS order_value double precision;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS anomaly_model_version text;
CREATE INDEX IF NOT EXISTS predictions_updated_idx ON predictions (updated_at);

CREATE INDEX IF NOT EXISTS deviations_batch_idx ON deviations (batch_job_id);

-- Micro-batches of POST /events are recorded as batch jobs (source 'stream'): which one scored an event.
CREATE INDEX IF NOT EXISTS order_events_batch_idx ON order_events (batch_job_id);
