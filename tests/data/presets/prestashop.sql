-- The subset of PrestaShop 1.7/8's schema the prestashop preset reads,
-- with the real column types (install/data/db_structure.sql, prefix ps_).
-- PrestaShop writes DATETIME in the shop's zone: these are Europe/Paris.
CREATE TABLE ps_cart (
  id_cart int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id_shop_group int(11) unsigned NOT NULL DEFAULT 1,
  id_shop int(11) unsigned NOT NULL DEFAULT 1,
  id_lang int(10) unsigned NOT NULL,
  id_currency int(10) unsigned NOT NULL,
  id_customer int(10) unsigned NOT NULL,
  id_guest int(10) unsigned NOT NULL,
  secure_key varchar(32) NOT NULL DEFAULT '-1',
  date_add datetime NOT NULL,
  date_upd datetime NOT NULL,
  KEY id_customer (id_customer)
);
CREATE TABLE ps_cart_product (
  id_cart int(10) unsigned NOT NULL,
  id_product int(10) unsigned NOT NULL,
  id_address_delivery int(10) unsigned NOT NULL DEFAULT 0,
  id_shop int(10) unsigned NOT NULL DEFAULT 1,
  id_product_attribute int(10) unsigned NOT NULL DEFAULT 0,
  id_customization int(10) unsigned NOT NULL DEFAULT 0,
  quantity int(10) unsigned NOT NULL DEFAULT 0,
  date_add datetime NOT NULL,
  PRIMARY KEY (id_cart, id_product, id_product_attribute, id_customization, id_address_delivery)
);
CREATE TABLE ps_customer (
  id_customer int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id_shop_group int(11) unsigned NOT NULL DEFAULT 1,
  id_shop int(11) unsigned NOT NULL DEFAULT 1,
  id_lang int(10) unsigned NULL,
  firstname varchar(255) NOT NULL,
  lastname varchar(255) NOT NULL,
  email varchar(255) NOT NULL,
  newsletter tinyint(1) unsigned NOT NULL DEFAULT 0,
  optin tinyint(1) unsigned NOT NULL DEFAULT 0,
  is_guest tinyint(1) NOT NULL DEFAULT 0,
  deleted tinyint(1) NOT NULL DEFAULT 0,
  date_add datetime NOT NULL,
  date_upd datetime NOT NULL
);
CREATE TABLE ps_currency (
  id_currency int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  iso_code varchar(3) NOT NULL DEFAULT '0',
  active tinyint(1) unsigned NOT NULL DEFAULT 1
);
CREATE TABLE ps_lang (
  id_lang int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(32) NOT NULL,
  active tinyint(3) unsigned NOT NULL DEFAULT 0,
  iso_code char(2) NOT NULL,
  language_code char(5) NOT NULL,
  locale varchar(5) NOT NULL
);
CREATE TABLE ps_product (
  id_product int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  reference varchar(64) DEFAULT NULL,
  price decimal(20,6) NOT NULL DEFAULT 0.000000
);
CREATE TABLE ps_product_shop (
  id_product int(10) unsigned NOT NULL,
  id_shop int(10) unsigned NOT NULL,
  price decimal(20,6) NOT NULL DEFAULT 0.000000,
  PRIMARY KEY (id_product, id_shop)
);
CREATE TABLE ps_product_lang (
  id_product int(10) unsigned NOT NULL,
  id_shop int(11) unsigned NOT NULL DEFAULT 1,
  id_lang int(10) unsigned NOT NULL,
  name varchar(128) NOT NULL,
  PRIMARY KEY (id_product, id_shop, id_lang)
);
CREATE TABLE ps_orders (
  id_order int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  reference varchar(9) DEFAULT NULL,
  id_shop int(11) unsigned NOT NULL DEFAULT 1,
  id_customer int(10) unsigned NOT NULL,
  id_cart int(10) unsigned NOT NULL,
  id_currency int(10) unsigned NOT NULL,
  total_paid decimal(20,6) NOT NULL DEFAULT 0.000000,
  total_paid_tax_incl decimal(20,6) DEFAULT 0.000000,
  date_add datetime NOT NULL,
  date_upd datetime NOT NULL,
  KEY id_cart (id_cart)
);
INSERT INTO ps_currency VALUES (1, 'EUR', 1);
INSERT INTO ps_lang VALUES (1, 'English', 1, 'en', 'en-us', 'en-US'), (2, 'Français', 1, 'fr', 'fr-fr', 'fr-FR');
INSERT INTO ps_customer (id_customer, id_lang, firstname, lastname, email, newsletter, is_guest, date_add, date_upd) VALUES
  (1, 1, 'Ada', 'Lovelace', 'ada@example.com', 1, 0, '2026-01-01 10:00:00', '2026-01-01 10:00:00'),
  (2, 2, 'Grace', 'Hopper', 'grace@example.com', 1, 1, '2026-11-21 09:00:00', '2026-11-21 09:00:00'),
  (3, 1, 'Bad', 'Row', 'not an address', 1, 0, '2026-11-21 09:00:00', '2026-11-21 09:00:00'),
  (4, 1, 'Gone', 'Buyer', 'gone@example.com', 1, 0, '2026-11-21 09:00:00', '2026-11-21 09:00:00'),
  (5, 1, 'No', 'Thanks', 'no@example.com', 0, 0, '2026-11-21 09:00:00', '2026-11-21 09:00:00');
-- 201 a customer's, 202 a guest's (checkout as guest), 203 a bad address,
-- 204 ordered, 205 no newsletter, 206 a visitor's (no customer yet).
INSERT INTO ps_cart (id_cart, id_lang, id_currency, id_customer, id_guest, date_add, date_upd) VALUES
  (201, 1, 1, 1, 11, '2026-11-21 09:00:00', '2026-11-21 10:00:00'),
  (202, 2, 1, 2, 12, '2026-11-21 09:30:00', '2026-11-21 10:05:00'),
  (203, 1, 1, 3, 13, '2026-11-21 09:40:00', '2026-11-21 10:10:00'),
  (204, 1, 1, 4, 14, '2026-11-21 09:50:00', '2026-11-21 10:20:00'),
  (205, 1, 1, 5, 15, '2026-11-21 09:55:00', '2026-11-21 10:25:00'),
  (206, 1, 1, 0, 16, '2026-11-21 09:56:00', '2026-11-21 10:26:00');
INSERT INTO ps_product VALUES (1, 'TENT-2', 249.000000), (2, 'SHIRT-M', 19.990000), (3, 'SOCK', 10.416667);
INSERT INTO ps_product_shop VALUES (1, 1, 249.000000), (2, 1, 19.990000), (3, 1, 10.416667);
INSERT INTO ps_product_lang VALUES
  (1, 1, 1, 'Tent'), (1, 1, 2, 'Tente'), (2, 1, 1, 'Shirt'), (2, 1, 2, 'Chemise'),
  (3, 1, 1, 'Socks'), (3, 1, 2, 'Chaussettes');
INSERT INTO ps_cart_product (id_cart, id_product, id_shop, quantity, date_add) VALUES
  (201, 1, 1, 1, '2026-11-21 09:00:00'), (201, 2, 1, 2, '2026-11-21 09:01:00'),
  (202, 3, 1, 3, '2026-11-21 09:30:00'), (203, 3, 1, 1, '2026-11-21 09:40:00'),
  (204, 3, 1, 1, '2026-11-21 09:50:00'), (205, 3, 1, 1, '2026-11-21 09:55:00'),
  (206, 3, 1, 1, '2026-11-21 09:56:00');
INSERT INTO ps_orders (reference, id_customer, id_cart, id_currency, total_paid, total_paid_tax_incl, date_add, date_upd) VALUES
  ('XKBKNABJK', 4, 204, 1, 12.500000, 12.500000, '2026-11-21 10:30:00', '2026-11-21 10:30:00');
