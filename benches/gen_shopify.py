#!/usr/bin/env python3
"""Writes N invented Shopify abandoned checkouts (about 2.1 rows each) to
stdout, in the admin's 70-column export layout. Deterministic (seeded)."""
import csv
import random
import sys
from pathlib import Path

n = int(sys.argv[1]) if len(sys.argv) > 1 else 250_000
header = (Path(__file__).parent.parent / "tests/data/shopify-abandoned-checkouts.header.csv").read_text().strip().split(",")
col = {name: i for i, name in enumerate(header)}
rng = random.Random(5)
products = [(f"SKU-{i:05d}", f"Product {i} - Size {i % 7} / Colour {i % 5}", f"{rng.randint(3, 400)}.{rng.randint(0, 99):02d}") for i in range(2000)]
first = ["Mia", "Noah", "Lea", "Ben", "Ella", "Finn", "Ida", "Jonas", "Lena", "Paul"]
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(header)
for k in range(n):
    checkout = 35_000_000_000_000 + k
    lines = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
    items = rng.sample(products, lines)
    name = f"{rng.choice(first)} Example{k % 997}"
    for j, (sku, title, price) in enumerate(items):
        row = [""] * len(header)
        row[col["Name"]] = f"#{checkout}"
        row[col["Lineitem quantity"]] = str(rng.randint(1, 3))
        row[col["Lineitem name"]] = title
        row[col["Lineitem price"]] = price
        row[col["Lineitem sku"]] = sku
        row[col["Lineitem requires shipping"]] = "true"
        row[col["Lineitem taxable"]] = "true"
        row[col["Vendor"]] = "Northwind Outdoor"
        if j == 0:
            row[col["Id"]] = str(checkout)
            row[col["Email"]] = f"customer{k}@example.com"
            row[col["Accepts Marketing"]] = rng.choice(("yes", "no"))
            row[col["Currency"]] = "EUR"
            row[col["Subtotal"]] = row[col["Total"]] = "100.00"
            day = 1 + k % 28
            row[col["Created at"]] = f"2026-03-{day:02d} {k % 24:02d}:{k % 60:02d}:{(k * 7) % 60:02d} +0100"
            for side in ("Billing", "Shipping"):
                row[col[f"{side} Name"]] = name
                row[col[f"{side} Street"]] = row[col[f"{side} Address1"]] = f"Lindenstrasse {k % 200}, Hinterhaus"
                row[col[f"{side} City"]] = "Dresden"
                row[col[f"{side} Zip"]] = f"'0{1000 + k % 8999}"
                row[col[f"{side} Country"]] = "DE"
            row[col["Source"]] = "web"
            row[col["Tax 1 Name"]] = "DE MwSt 19%"
            row[col["Tax 1 Value"]] = "15.97"
        out.writerow(row)
