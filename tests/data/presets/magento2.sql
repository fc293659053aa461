-- The subset of Magento 2's schema the magento2 preset reads, with the
-- real column types (db_schema.xml of Magento_Quote, Magento_Sales,
-- Magento_Newsletter).
CREATE TABLE quote (
  entity_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  store_id smallint unsigned NOT NULL DEFAULT 0,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at timestamp NOT NULL DEFAULT '0000-00-00 00:00:00',
  is_active smallint unsigned DEFAULT 1,
  items_count int unsigned DEFAULT 0,
  customer_email varchar(255) DEFAULT NULL,
  customer_firstname varchar(255) DEFAULT NULL,
  quote_currency_code varchar(255) DEFAULT NULL,
  KEY quote_updated_at (updated_at)
);
CREATE TABLE quote_address (
  address_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  quote_id int unsigned NOT NULL DEFAULT 0,
  address_type varchar(10) DEFAULT NULL,
  email varchar(255) DEFAULT NULL,
  firstname varchar(255) DEFAULT NULL
);
CREATE TABLE quote_item (
  item_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  quote_id int unsigned NOT NULL DEFAULT 0,
  parent_item_id int unsigned DEFAULT NULL,
  sku varchar(255) DEFAULT NULL,
  name varchar(255) DEFAULT NULL,
  qty decimal(12,4) NOT NULL DEFAULT 0.0000,
  price decimal(20,4) NOT NULL DEFAULT 0.0000,
  KEY quote_item_quote_id (quote_id)
);
CREATE TABLE sales_order (
  entity_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  increment_id varchar(32) DEFAULT NULL,
  quote_id int unsigned DEFAULT NULL,
  customer_email varchar(128) DEFAULT NULL,
  grand_total decimal(20,4) DEFAULT NULL,
  order_currency_code varchar(255) DEFAULT NULL,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE newsletter_subscriber (
  subscriber_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  store_id smallint unsigned DEFAULT 0,
  customer_id int unsigned NOT NULL DEFAULT 0,
  subscriber_email varchar(150) DEFAULT NULL,
  subscriber_status int DEFAULT 0
);
SET time_zone = '+00:00';
INSERT INTO quote VALUES
  (101, 1, '2026-11-21 08:00:00', '2026-11-21 09:00:00', 1, 2, 'ada@example.com', 'Ada', 'EUR'),
  (102, 1, '2026-11-21 08:30:00', '0000-00-00 00:00:00', 1, 1, NULL, NULL, 'EUR'),
  (103, 1, '2026-11-21 08:40:00', '2026-11-21 09:10:00', 1, 1, 'not an address', 'Bad', 'EUR'),
  (104, 1, '2026-11-21 08:50:00', '2026-11-21 09:20:00', 0, 1, 'gone@example.com', 'Gone', 'EUR'),
  (105, 1, '2026-11-21 08:55:00', '2026-11-21 09:25:00', 1, 1, 'no@example.com', 'No', 'EUR');
INSERT INTO quote_address (quote_id, address_type, email, firstname) VALUES
  (102, 'billing', 'grace@example.com', 'Grace'),
  (102, 'shipping', 'grace@example.com', 'Grace');
INSERT INTO quote_item (item_id, quote_id, parent_item_id, sku, name, qty, price) VALUES
  (1, 101, NULL, 'TENT-2', 'Tent', 1.0000, 249.0000),
  (2, 101, NULL, 'SHIRT-M', 'Shirt', 2.0000, 19.9900),
  (3, 101, 2, 'SHIRT-M-BLUE', 'Shirt', 2.0000, 0.0000),
  (4, 102, NULL, 'SOCK', 'Socks', 3.0000, 12.5000),
  (5, 103, NULL, 'SOCK', 'Socks', 1.0000, 12.5000),
  (6, 104, NULL, 'SOCK', 'Socks', 1.0000, 12.5000),
  (7, 105, NULL, 'SOCK', 'Socks', 1.0000, 12.5000);
INSERT INTO newsletter_subscriber (store_id, subscriber_email, subscriber_status) VALUES
  (1, 'ada@example.com', 1), (1, 'grace@example.com', 1), (1, 'no@example.com', 3);
