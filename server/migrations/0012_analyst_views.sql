-- The read-only views the chat's SQL analyst may query (tools/sql_analyst.py), and the role it queries them as.
--
-- The analyst runs model-written SELECTs in a read-only transaction with a statement timeout, as the role
-- `rimas_analyst`, which may read these views and nothing else: no customer names, emails or other tables. The
-- views carry what sales questions need: daily sales with store and product attributes, stock, products, stores
-- and orders without the customer's personal fields.
-- The role is cluster-wide: created once (another database of the cluster may already have made it), and granted
-- to the migrating user so it can SET ROLE to it. A user without the right to create roles gets the views only,
-- and the analyst then refuses to run (it never queries as the owner).

CREATE OR REPLACE VIEW analyst_sales AS
SELECT s.date, s.store_id, st.name AS store_name, st.city, st.region, s.sku, p.name AS product_name, p.category,
       s.units, s.price, s.discount, s.units * s.price AS revenue
FROM sales_daily s JOIN stores st ON st.store_id = s.store_id JOIN products p ON p.sku = s.sku;

CREATE OR REPLACE VIEW analyst_inventory AS
SELECT i.store_id, i.sku, p.name AS product_name, p.category, i.on_hand, i.on_order, i.lead_time_days
FROM inventory i JOIN products p ON p.sku = i.sku;

CREATE OR REPLACE VIEW analyst_products AS
SELECT sku, name, category, unit_cost, unit_price, importance FROM products;

CREATE OR REPLACE VIEW analyst_stores AS
SELECT store_id, name, city, region, size_sqft, opened_on FROM stores;

CREATE OR REPLACE VIEW analyst_orders AS
SELECT order_id, customer_id, store_id, sku, quantity, order_date, promised_delivery_date, ship_date, delivery_date,
       warehouse_block, mode_of_shipment, carrier_name, product_importance, cost_of_product, discount_offered,
       weight_in_gms, order_value, payment_status, order_status, is_late
FROM orders;

DO $$
BEGIN
    BEGIN
        CREATE ROLE rimas_analyst NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- made by an earlier migration of another database of this cluster
    END;
    GRANT SELECT ON analyst_sales, analyst_inventory, analyst_products, analyst_stores, analyst_orders
        TO rimas_analyst;
    EXECUTE format('GRANT rimas_analyst TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create or grant the role rimas_analyst: the chat SQL analyst stays off';
END
$$;
