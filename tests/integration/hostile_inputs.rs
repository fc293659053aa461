//! Inputs a hostile (or merely sloppy) world sends: control characters in
//! ids and names, huge fields, amounts past `i64`, NUL bytes, UTF-16 and
//! Windows-1252 files, duplicated columns, bare CR line endings, times in
//! the future. Each is a row error naming file, line, field and value (the
//! rest imported, exit 3) or an error naming the whole file; never a
//! silently stored or clamped value.

use crate::{
    fixtures::{Config, NATIVE_HEADER, NOW, Transport, carts_csv, shop},
    harness::{Output, Test, carts_with},
};

/// A native cart row: `id`, `first_name`, `updated_at`, `sku`, `name`,
/// `quantity`, `unit_price`; the other fields plain.
fn row(
    id: &str,
    first_name: &str,
    updated_at: &str,
    sku: &str,
    name: &str,
    quantity: &str,
    unit_price: &str,
) -> String {
    format!(
        "{id},{email}@example.com,{first_name},en-GB,EUR,open,true,2026-11-21T08:00:00Z,{updated_at},{sku},{name},Kitchen,{quantity},{unit_price},,",
        email = id.replace(['"', '\n', '\r', '\t'], "").to_lowercase()
    )
}

/// A good cart, idle since 09:30 on the day of `NOW`.
fn good(id: &str) -> String {
    row(
        id,
        "Ada",
        "2026-11-21T09:30:00Z",
        "MUG-1",
        "Mug",
        "1",
        "9.50",
    )
}

fn import(t: &Test, args: &[&str]) -> Output {
    let mut all = vec!["import", "--now", NOW];
    all.extend_from_slice(args);
    t.recart(&all)
}

/// `column` of every stored line item, in cart and line order.
fn items(t: &Test, column: &str) -> Vec<String> {
    let store = t.store();
    let mut query = store
        .conn()
        .prepare(&format!(
            "SELECT {column} FROM cart_items ORDER BY cart_id, position"
        ))
        .unwrap();
    query
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Item 7: a cart id with a newline got a link token nobody could verify,
/// so that customer could not unsubscribe. Ids with a control character are
/// rejected; names keep their words, the control characters replaced.
#[test]
fn ids_with_control_characters_are_rejected_and_names_cleaned() {
    let rows = [
        row(
            "\"C-7\n01\"",
            "Ada",
            "2026-11-21T09:30:00Z",
            "MUG-1",
            "Mug",
            "1",
            "9.50",
        ),
        row(
            "C-702",
            "Bob",
            "2026-11-21T09:30:00Z",
            "\"MUG\t2\"",
            "Mug",
            "1",
            "9.50",
        ),
        row(
            "C-703",
            "\"Ann\tMarie\"",
            "2026-11-21T09:30:00Z",
            "MUG-3",
            "\"Merino\r\nSocks,\t2-pack\"",
            "1",
            "9.50",
        ),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let t = shop(&Config::new(Transport::File)).file("ids.csv", carts_csv(&rows));
    import(&t, &["ids.csv"])
        .expect_status(3)
        .expect_stderr_contains("ids.csv:2: field cart_id: holds the control character '\\n'")
        .expect_stderr_contains("ids.csv:4: field sku: holds the control character '\\t'")
        .expect_stdout_line("ids.csv: 3 rows read, 1 carts upserted, 0 unchanged, 2 rejected");
    assert_eq!(t.store().cart_ids(), ["C-703"]);
    assert_eq!(items(&t, "name"), ["Merino Socks, 2-pack"]);
    let first_name: String = t
        .store()
        .conn()
        .query_row("SELECT first_name FROM carts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(first_name, "Ann Marie");
}

/// Item 8: a field over the documented 64 KiB is a row error naming it.
#[test]
fn a_field_over_64_kib_is_a_row_error_not_a_stored_value() {
    let huge = "x".repeat(64 * 1024 + 1);
    let rows = [
        row(
            "C-801",
            "Ada",
            "2026-11-21T09:30:00Z",
            "MUG-1",
            &huge,
            "1",
            "9.50",
        ),
        good("C-802"),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let t = shop(&Config::new(Transport::File)).file("huge.csv", carts_csv(&rows));
    let out = import(&t, &["huge.csv"]);
    out.expect_status(3)
        .expect_stderr_contains("huge.csv:2: field product_name: is 65537 bytes long")
        .expect_stdout_line("huge.csv: 2 rows read, 1 carts upserted, 0 unchanged, 1 rejected");
    assert!(out.stderr.len() < 1000, "the value is cut: {}", out.stderr);
    assert_eq!(t.store().cart_ids(), ["C-802"]);
}

/// Item 9: a line or cart total past `i64` was clamped to its largest value
/// and mailed as such. It is a row error naming the field.
#[test]
fn amounts_past_i64_are_row_errors_not_clamped_totals() {
    let largest = "92233720368547758.07";
    let rows = [
        row(
            "C-901",
            "Ada",
            "2026-11-21T09:30:00Z",
            "MUG-1",
            "Mug",
            "2147483648",
            largest,
        ),
        row(
            "C-902",
            "Bob",
            "2026-11-21T09:30:00Z",
            "MUG-1",
            "Mug",
            "1",
            largest,
        ),
        "C-902,,,,,,,,,MUG-2,Cup,Kitchen,1,0.01,,".into(),
        good("C-903"),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let t = shop(&Config::new(Transport::File)).file("big.csv", carts_csv(&rows));
    import(&t, &["big.csv"])
        .expect_status(3)
        .expect_stderr_contains(
            "big.csv:2: field quantity: 2147483648 at 92233720368547758.07 each comes to more \
             than the largest amount recart stores",
        )
        .expect_stderr_contains("big.csv:4: field unit_price: brings the cart's total past");
    let store = t.store();
    assert_eq!(store.cart_ids(), ["C-903"]);
    assert_eq!(
        store.count("SELECT total_minor FROM carts WHERE id = 'C-903'"),
        950
    );
}

/// Item 10: a NUL made the whole file "binary data" near its start and was
/// stored as `\u0000` further on. Wherever it is, it rejects its row.
#[test]
fn a_nul_byte_is_a_row_error_wherever_it_is() {
    let mut rows = vec![good("C-1001")];
    rows.push(row(
        "C-1002",
        "Bob\0",
        "2026-11-21T09:30:00Z",
        "MUG-1",
        "Mug",
        "1",
        "9.50",
    ));
    // Far past the first 4 KiB that were once sniffed for binary data.
    for n in 3..200 {
        rows.push(good(&format!("C-1{n:03}")));
    }
    rows.push(row(
        "C-1200",
        "Ann",
        "2026-11-21T09:30:00Z",
        "MUG-1",
        "Mug\0\0",
        "1",
        "9.50",
    ));
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let t = shop(&Config::new(Transport::File)).file("nul.csv", carts_csv(&rows));
    import(&t, &["nul.csv"])
        .expect_status(3)
        .expect_stderr_contains("nul.csv:3: field first_name: holds a NUL byte")
        .expect_stderr_contains("nul.csv:201: field product_name: holds a NUL byte")
        .expect_stdout_line("nul.csv: 200 rows read, 198 carts upserted, 0 unchanged, 2 rejected");
    let store = t.store();
    assert_eq!(
        store.count("SELECT count(*) FROM carts WHERE instr(first_name, char(0)) > 0"),
        0
    );
}

fn utf16le(text: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

/// Item 10: a UTF-16 file is named as such (not "binary data"), and can be
/// read by declaring it.
#[test]
fn a_utf16_file_is_named_and_read_when_declared() {
    let t = shop(&Config::new(Transport::File))
        .file("utf16.csv", utf16le(&carts_csv(&[&good("C-1101")])));
    import(&t, &["utf16.csv"])
        .expect_status(1)
        .expect_stderr_contains("is UTF-16 (it starts with the byte order mark FF FE")
        .expect_stderr_contains("re-export it as UTF-8");
    assert!(t.cart_ids_if_any().is_empty());
    import(&t, &["--encoding", "utf-16", "utf16.csv"])
        .expect_success()
        .expect_stdout_line("utf16.csv: 1 rows read, 1 carts upserted, 0 unchanged, 0 rejected");
}

/// Item 10: Excel's plain "CSV" is Windows-1252. Its rows were rejected as
/// invalid UTF-8; the error now says what to set, and with it (on the
/// command line, or on the source for `run`) the file is read.
#[test]
fn a_windows_1252_file_is_read_with_its_encoding_set() {
    let csv = carts_csv(&[&row(
        "C-1201",
        "Zo\u{eb}",
        "2026-11-21T09:30:00Z",
        "MUG-1",
        "Caf\u{e9} \u{20ac} Mug",
        "1",
        "9.50",
    )]);
    let latin: Vec<u8> = encoding_rs::WINDOWS_1252.encode(&csv).0.into_owned();
    assert!(std::str::from_utf8(&latin).is_err());
    let mut config = Config::new(Transport::File);
    let toml = config.to_toml().replace(
        "format = \"native\"\n",
        "format = \"native\"\nencoding = \"windows-1252\"\n",
    );
    config.sources.clear();
    let t = shop(&config)
        .file("latin.csv", &latin)
        .file("carts.csv", &latin)
        .file("plain.toml", config.to_toml())
        .file("recart.toml", toml);
    import(&t, &["--config", "plain.toml", "latin.csv"])
        .expect_status(3)
        .expect_stderr_contains("is not valid UTF-8")
        .expect_stderr_contains("encoding = \"windows-1252\"");
    assert!(t.cart_ids_if_any().is_empty());
    import(&t, &["--encoding", "windows-1252", "latin.csv"]).expect_success();
    assert_eq!(items(&t, "name"), ["Caf\u{e9} \u{20ac} Mug"]);
    for file in ["recart.db", "recart.db-wal", "recart.db-shm"] {
        let _ = std::fs::remove_file(t.join(file));
    }

    // `[[sources]] encoding` for `run`.
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "send"), ["C-1201"]);
    let bad = t.read("recart.toml").replace("windows-1252", "klingon");
    t.write("recart.toml", bad);
    t.recart(&["run", "--dry-run", "--now", NOW])
        .expect_status(2)
        .expect_stderr_contains("sources[0].encoding: \"klingon\" is not an encoding");
}

/// Item 11: a column named twice was read from its first occurrence, the
/// other silently ignored. The file is refused, naming both positions.
#[test]
fn a_column_named_twice_is_an_error_naming_both() {
    let header = format!("{NATIVE_HEADER},email");
    let csv = format!("{header}\n{},other@example.com\n", good("C-1301"));
    let t = shop(&Config::new(Transport::File)).file("twice.csv", csv);
    import(&t, &["twice.csv"])
        .expect_status(1)
        .expect_stderr_contains("the header names the column \"email\" twice, as columns 2 and 17");
    assert!(t.cart_ids_if_any().is_empty());
}

/// Item 11: with bare CR line endings (old Mac exports) the file was one
/// record. Each CR ends a line now: every cart is imported, errors have
/// their lines.
#[test]
fn bare_cr_line_endings_are_line_endings() {
    let bad = row(
        "C-1403",
        "Cy",
        "2026-11-21T09:30:00Z",
        "MUG-1",
        "Mug",
        "-1",
        "9.50",
    );
    let csv =
        carts_csv(&[&good("C-1401"), &good("C-1402"), &bad, &good("C-1404")]).replace('\n', "\r");
    let t = shop(&Config::new(Transport::File)).file("mac.csv", csv);
    import(&t, &["mac.csv"])
        .expect_status(3)
        .expect_stderr_contains("mac.csv:4: field quantity")
        .expect_stdout_line("mac.csv: 4 rows read, 3 carts upserted, 0 unchanged, 1 rejected");
    assert_eq!(t.store().cart_ids(), ["C-1401", "C-1402", "C-1404"]);
}

/// Item 12: a snapshot dated 2030 was stored, and the corrected one then
/// ignored as older. A time more than a day after `--now` is a row error,
/// for `import` and for `run`'s sources; the corrected file is imported.
#[test]
fn a_snapshot_from_the_future_is_rejected_and_the_corrected_one_stored() {
    let future = row(
        "C-1501",
        "Ada",
        "2030-01-01T00:00:00Z",
        "MUG-1",
        "Mug",
        "1",
        "9.50",
    );
    let soon = row(
        "C-1502",
        "Bob",
        "2026-11-22T11:00:00Z",
        "MUG-1",
        "Mug",
        "1",
        "9.50",
    );
    let t = shop(&Config::new(Transport::File))
        .file("carts.csv", carts_csv(&[&future, &soon]))
        .file("fixed.csv", carts_csv(&[&good("C-1501")]));
    import(&t, &["carts.csv"])
        .expect_status(3)
        .expect_stderr_contains(
            "carts.csv:2: field updated_at: \"2030-01-01T00:00:00Z\" is more than a day after \
             now (2026-11-21T12:00:00Z)",
        );
    // Within a day is clock skew, not an error.
    assert_eq!(t.store().cart_ids(), ["C-1502"]);
    import(&t, &["fixed.csv"])
        .expect_success()
        .expect_stdout_line("fixed.csv: 1 rows read, 1 carts upserted, 0 unchanged, 0 rejected");
    assert_eq!(
        t.store()
            .count("SELECT updated_at FROM carts WHERE id = 'C-1501'"),
        1_795_253_400
    );

    // `run` imports its sources at its own `--now`.
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_status(3)
        .expect_stderr_contains("field updated_at: \"2030-01-01T00:00:00Z\" is more than a day");
}
