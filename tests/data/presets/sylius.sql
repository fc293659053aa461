-- The subset of Sylius 1.x's schema the sylius preset reads, with the real
-- column types (Doctrine migrations, PostgreSQL). Times are `timestamp`
-- without zone, here UTC.
CREATE TABLE sylius_customer (
  id SERIAL PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  email_canonical VARCHAR(255) NOT NULL,
  first_name VARCHAR(255) DEFAULT NULL,
  last_name VARCHAR(255) DEFAULT NULL,
  created_at TIMESTAMP(0) WITHOUT TIME ZONE NOT NULL,
  updated_at TIMESTAMP(0) WITHOUT TIME ZONE DEFAULT NULL,
  subscribed_to_newsletter BOOLEAN NOT NULL
);
CREATE TABLE sylius_order (
  id SERIAL PRIMARY KEY,
  customer_id INT DEFAULT NULL REFERENCES sylius_customer (id),
  number VARCHAR(255) DEFAULT NULL,
  state VARCHAR(255) NOT NULL,
  checkout_completed_at TIMESTAMP(0) WITHOUT TIME ZONE DEFAULT NULL,
  items_total INT NOT NULL,
  adjustments_total INT NOT NULL,
  total INT NOT NULL,
  created_at TIMESTAMP(0) WITHOUT TIME ZONE NOT NULL,
  updated_at TIMESTAMP(0) WITHOUT TIME ZONE DEFAULT NULL,
  currency_code VARCHAR(3) NOT NULL,
  locale_code VARCHAR(255) NOT NULL,
  checkout_state VARCHAR(255) NOT NULL,
  payment_state VARCHAR(255) NOT NULL,
  shipping_state VARCHAR(255) NOT NULL,
  token_value VARCHAR(255) DEFAULT NULL
);
CREATE INDEX idx_sylius_order_updated_at ON sylius_order (updated_at);
CREATE TABLE sylius_product_variant (
  id SERIAL PRIMARY KEY,
  product_id INT NOT NULL,
  code VARCHAR(255) NOT NULL,
  created_at TIMESTAMP(0) WITHOUT TIME ZONE NOT NULL,
  position INT NOT NULL
);
CREATE TABLE sylius_product_translation (
  id SERIAL PRIMARY KEY,
  translatable_id INT NOT NULL,
  name VARCHAR(255) NOT NULL,
  slug VARCHAR(255) NOT NULL,
  locale VARCHAR(255) NOT NULL
);
CREATE TABLE sylius_order_item (
  id SERIAL PRIMARY KEY,
  order_id INT NOT NULL REFERENCES sylius_order (id),
  variant_id INT NOT NULL REFERENCES sylius_product_variant (id),
  quantity INT NOT NULL,
  unit_price INT NOT NULL,
  units_total INT NOT NULL,
  adjustments_total INT NOT NULL,
  total INT NOT NULL,
  is_immutable BOOLEAN NOT NULL,
  product_name VARCHAR(255) DEFAULT NULL,
  variant_name VARCHAR(255) DEFAULT NULL
);
INSERT INTO sylius_customer (id, email, email_canonical, first_name, created_at, subscribed_to_newsletter) VALUES
  (1, 'ada@example.com', 'ada@example.com', 'Ada', '2026-01-01 10:00:00', true),
  (2, 'grace@example.com', 'grace@example.com', NULL, '2026-11-21 09:00:00', true),
  (3, 'not an address', 'not an address', 'Bad', '2026-11-21 09:00:00', true),
  (4, 'gone@example.com', 'gone@example.com', 'Gone', '2026-11-21 09:00:00', true),
  (5, 'no@example.com', 'no@example.com', 'No', '2026-11-21 09:00:00', false);
-- 301 a customer's, 302 a guest's (a customer without a shop user; no
-- updated_at), 303 a bad address, 304 ordered, 305 not subscribed, 306 a
-- visitor's (no customer yet).
INSERT INTO sylius_order (id, customer_id, number, state, checkout_completed_at, items_total,
                          adjustments_total, total, created_at, updated_at, currency_code,
                          locale_code, checkout_state, payment_state, shipping_state) VALUES
  (301, 1, NULL, 'cart', NULL, 28898, 0, 28898, '2026-11-21 08:00:00', '2026-11-21 09:00:00', 'EUR', 'en_US', 'cart', 'cart', 'cart'),
  (302, 2, NULL, 'cart', NULL, 3750, 0, 3750, '2026-11-21 09:05:00', NULL, 'EUR', 'fr_FR', 'addressed', 'cart', 'cart'),
  (303, 3, NULL, 'cart', NULL, 1250, 0, 1250, '2026-11-21 08:40:00', '2026-11-21 09:10:00', 'EUR', 'en_US', 'addressed', 'cart', 'cart'),
  (304, 4, '000000041', 'new', '2026-11-21 09:30:00', 1250, 0, 1250, '2026-11-21 08:50:00', '2026-11-21 09:30:00', 'EUR', 'en_US', 'completed', 'awaiting_payment', 'ready'),
  (305, 5, NULL, 'cart', NULL, 1250, 0, 1250, '2026-11-21 08:55:00', '2026-11-21 09:25:00', 'EUR', 'en_US', 'addressed', 'cart', 'cart'),
  (306, NULL, NULL, 'cart', NULL, 1250, 0, 1250, '2026-11-21 08:56:00', '2026-11-21 09:26:00', 'EUR', 'en_US', 'cart', 'cart', 'cart');
INSERT INTO sylius_product_variant (id, product_id, code, created_at, position) VALUES
  (1, 1, 'TENT-2', '2026-01-01 00:00:00', 0), (2, 2, 'SHIRT-M', '2026-01-01 00:00:00', 0),
  (3, 3, 'SOCK', '2026-01-01 00:00:00', 0);
INSERT INTO sylius_product_translation (translatable_id, name, slug, locale) VALUES
  (1, 'Tent', 'tent', 'en_US'), (2, 'Shirt', 'shirt', 'en_US'), (3, 'Socks', 'socks', 'en_US'),
  (3, 'Chaussettes', 'chaussettes', 'fr_FR');
INSERT INTO sylius_order_item (order_id, variant_id, quantity, unit_price, units_total,
                               adjustments_total, total, is_immutable, product_name, variant_name) VALUES
  (301, 1, 1, 24900, 24900, 0, 24900, false, 'Tent', NULL),
  (301, 2, 2, 1999, 3998, 0, 3998, false, 'Shirt', NULL),
  (302, 3, 3, 1250, 3750, 0, 3750, false, 'Socks', NULL),
  (303, 3, 1, 1250, 1250, 0, 1250, false, 'Socks', NULL),
  (304, 3, 1, 1250, 1250, 0, 1250, true, 'Socks', NULL),
  (305, 3, 1, 1250, 1250, 0, 1250, false, 'Socks', NULL),
  (306, 3, 1, 1250, 1250, 0, 1250, false, 'Socks', NULL);
SELECT setval('sylius_order_id_seq', 400);
