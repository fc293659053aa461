-- The subset of WooCommerce 8's schema (HPOS) the woocommerce preset reads,
-- with the real column types (OrdersTableDataStore::get_database_schema,
-- WC_Install::get_schema), prefix wp_. Times are the *_gmt columns: UTC.
CREATE TABLE wp_wc_orders (
  id bigint(20) unsigned NOT NULL PRIMARY KEY,
  status varchar(20) NULL,
  currency varchar(10) NULL,
  type varchar(20) NULL,
  tax_amount decimal(26,8) NULL,
  total_amount decimal(26,8) NULL,
  customer_id bigint(20) unsigned NULL,
  billing_email varchar(320) NULL,
  date_created_gmt datetime NULL,
  date_updated_gmt datetime NULL,
  parent_order_id bigint(20) unsigned NULL,
  payment_method varchar(100) NULL,
  KEY status (status),
  KEY date_created (date_created_gmt),
  KEY billing_email (billing_email(20)),
  KEY type_status_date (type, status, date_created_gmt)
);
CREATE TABLE wp_wc_order_addresses (
  id bigint(20) unsigned AUTO_INCREMENT PRIMARY KEY,
  order_id bigint(20) unsigned NOT NULL,
  address_type varchar(20) NULL,
  first_name text NULL,
  last_name text NULL,
  email varchar(320) NULL,
  phone varchar(100) NULL,
  KEY order_id (order_id),
  UNIQUE KEY address_type_order_id (address_type, order_id)
);
CREATE TABLE wp_woocommerce_order_items (
  order_item_id bigint(20) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_item_name text NOT NULL,
  order_item_type varchar(200) NOT NULL DEFAULT '',
  order_id bigint(20) unsigned NOT NULL,
  KEY order_id (order_id)
);
CREATE TABLE wp_woocommerce_order_itemmeta (
  meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_item_id bigint(20) unsigned NOT NULL,
  meta_key varchar(255) DEFAULT NULL,
  meta_value longtext NULL,
  KEY order_item_id (order_item_id),
  KEY meta_key (meta_key(32))
);
CREATE TABLE wp_wc_product_meta_lookup (
  product_id bigint(20) NOT NULL PRIMARY KEY,
  sku varchar(100) NULL DEFAULT '',
  virtual tinyint(1) NULL DEFAULT 0,
  downloadable tinyint(1) NULL DEFAULT 0,
  min_price decimal(19,4) NULL DEFAULT NULL,
  max_price decimal(19,4) NULL DEFAULT NULL,
  stock_status varchar(100) NULL DEFAULT 'instock'
);
-- 401 a customer's draft, 402 a guest's (customer_id 0), 403 a bad address,
-- 404 a draft that became an order, 405 a draft without an e-mail yet,
-- 406 a refund (not a shop_order).
INSERT INTO wp_wc_orders (id, status, currency, type, tax_amount, total_amount, customer_id,
                          billing_email, date_created_gmt, date_updated_gmt) VALUES
  (401, 'wc-checkout-draft', 'EUR', 'shop_order', 0, 288.98, 7, 'ada@example.com', '2026-11-21 08:00:00', '2026-11-21 09:00:00'),
  (402, 'wc-checkout-draft', 'EUR', 'shop_order', 0, 30.00, 0, 'grace@example.com', '2026-11-21 08:30:00', '2026-11-21 09:05:00'),
  (403, 'wc-checkout-draft', 'EUR', 'shop_order', 0, 12.50, 0, 'not an address', '2026-11-21 08:40:00', '2026-11-21 09:10:00'),
  (404, 'wc-processing', 'EUR', 'shop_order', 0, 12.50, 0, 'gone@example.com', '2026-11-21 08:50:00', '2026-11-21 09:20:00'),
  (405, 'wc-checkout-draft', 'EUR', 'shop_order', 0, 12.50, 0, NULL, '2026-11-21 08:55:00', '2026-11-21 09:25:00'),
  (406, 'wc-completed', 'EUR', 'shop_order_refund', 0, -12.50, 0, NULL, '2026-11-21 08:56:00', '2026-11-21 09:26:00');
INSERT INTO wp_wc_order_addresses (order_id, address_type, first_name, email) VALUES
  (401, 'billing', 'Ada', 'ada@example.com'), (402, 'billing', 'Grace', 'grace@example.com'),
  (402, 'shipping', 'Grace', NULL);
INSERT INTO wp_woocommerce_order_items (order_item_id, order_item_name, order_item_type, order_id) VALUES
  (1, 'Tent', 'line_item', 401), (2, 'Shirt - Blue', 'line_item', 401),
  (3, 'Flat rate', 'shipping', 401), (4, 'Socks', 'line_item', 402),
  (5, 'Socks', 'line_item', 403), (6, 'Socks', 'line_item', 404), (7, 'Socks', 'line_item', 405);
-- Meta values are text, as WordPress stores them; 402's three socks cost
-- 30.00 together (10 each); item 2 is a variation with its own SKU.
INSERT INTO wp_woocommerce_order_itemmeta (order_item_id, meta_key, meta_value) VALUES
  (1, '_product_id', '10'), (1, '_variation_id', '0'), (1, '_qty', '1'),
  (1, '_line_subtotal', '249'), (1, '_line_total', '249'),
  (2, '_product_id', '20'), (2, '_variation_id', '21'), (2, '_qty', '2'),
  (2, '_line_subtotal', '39.98'), (2, '_line_total', '39.98'),
  (3, 'cost', '4.90'),
  (4, '_product_id', '30'), (4, '_variation_id', '0'), (4, '_qty', '3'),
  (4, '_line_subtotal', '30'), (4, '_line_total', '27'),
  (5, '_product_id', '30'), (5, '_qty', '1'), (5, '_line_subtotal', '12.5'),
  (6, '_product_id', '30'), (6, '_qty', '1'), (6, '_line_subtotal', '12.5'),
  (7, '_product_id', '30'), (7, '_qty', '1'), (7, '_line_subtotal', '12.5');
INSERT INTO wp_wc_product_meta_lookup (product_id, sku) VALUES
  (10, 'TENT-2'), (20, 'SHIRT'), (21, 'SHIRT-M-BLUE'), (30, 'SOCK');
