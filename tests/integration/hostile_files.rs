//! Inputs and outputs a hostile world can't break: cart ids that read
//! alike or are very long, files and symbolic links planted where recart
//! writes, and the modes of the files it creates.

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use crate::{
    fixtures::{ADA, CARTS_CSV, Config, NOW, Transport, carts_csv, many_carts, shop},
    harness::{Test, carts_with, for_cart, mail_file},
};

/// The cart ids of the issue: 4 file names for 9 carts before.
const ALIKE: [&str; 9] = [
    "a/b", "a_b", "a\\b", "a b", "A_B", "ü-ñ", "ñ-ü", "x.y", "x_y",
];

/// A native CSV row for cart `id`, due for the 1h step at `NOW`, with an
/// address of its own (the cooldown is per address).
fn row(id: &str, n: usize) -> String {
    format!(
        "\"{id}\",p{n}@example.com,P{n},en-GB,EUR,open,true,2026-11-21T08:00:00Z,2026-11-21T09:00:00Z,SKU-1,Thing,Stuff,1,10.00,,"
    )
}

fn shop_with_carts(ids: &[&str]) -> Test {
    let rows: Vec<String> = ids.iter().enumerate().map(|(n, id)| row(id, n)).collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    shop(&Config::new(Transport::File)).file("carts.csv", carts_csv(&rows))
}

/// 30 carts, and one with the id `long`: all due for 1h at `NOW`.
fn csv_with_long_id(long: &str) -> String {
    let mut csv = many_carts(30);
    csv.push_str(&row(long, 999));
    csv.push('\n');
    csv
}

#[track_caller]
fn mode(t: &Test, path: impl AsRef<Path>) -> u32 {
    let path = t.join(path);
    std::fs::symlink_metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn cart_ids_that_read_alike_get_a_mail_file_each() {
    let t = shop_with_carts(&ALIKE);
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "sent").len(), ALIKE.len());
    assert_eq!(t.files_in("outbox", ".eml").len(), ALIKE.len());
    for id in ALIKE {
        let mail = t.read(mail_file("outbox", id, "1h", "eml"));
        assert!(mail.contains("Cart "), "{id}: {mail}");
    }
    // Each file holds its own cart's mail: the template prints the id.
    let ab = t.read(mail_file("outbox", "a_b", "1h", "eml"));
    let upper = t.read(mail_file("outbox", "A_B", "1h", "eml"));
    assert!(ab.contains("Cart a_b ") && upper.contains("Cart A_B "));

    // The preview gallery names its files the same way.
    let t = shop_with_carts(&ALIKE);
    t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW])
        .expect_success();
    assert_eq!(t.files_in("preview", ".eml").len(), ALIKE.len());
    assert_eq!(t.files_in("preview", ".html").len(), ALIKE.len() + 1);
    let index = t.read("preview/index.html");
    for id in ALIKE {
        let html = mail_file("preview", id, "1h", "html");
        assert!(t.exists(&html), "{id}");
        let href = html.trim_start_matches("preview/");
        assert!(index.contains(&format!("href=\"{href}\"")), "{id}");
    }
}

#[test]
fn a_300_character_cart_id_gets_a_bounded_name_and_stops_nothing() {
    let long = "L".repeat(300);
    let t = shop(&Config::new(Transport::File)).file("carts.csv", csv_with_long_id(&long));
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "sent").len(), 31);
    assert_eq!(t.files_in("outbox", ".eml").len(), 31);
    let name = mail_file("outbox", &long, "1h", "eml");
    assert!(t.exists(&name), "{name}");
    assert!(name.len() < 100, "{name}");

    // The preview too.
    let t = shop(&Config::new(Transport::File)).file("carts.csv", csv_with_long_id(&long));
    t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW])
        .expect_success();
    assert!(t.exists(mail_file("preview", &long, "1h", "html")));
}

#[test]
fn a_mail_file_already_there_is_kept_and_only_that_mail_fails() {
    let t = shop(&Config::new(Transport::File));
    let taken = mail_file("outbox", "C-1001", "1h", "eml");
    t.write(&taken, "an older mail\n");
    let out = t.recart(&["run", "--json", "--now", NOW]);
    // Partial: one mail failed, the others went out.
    out.expect_status(3);
    let decisions = out.decisions();
    let ada = for_cart(&decisions, "C-1001");
    assert_eq!(ada[0].outcome, "failed", "{ada:?}");
    let reason = ada[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("\"C-1001\""), "{reason}");
    assert!(
        reason.contains(taken.trim_start_matches("outbox/")),
        "{reason}"
    );
    assert!(reason.contains("already exists"), "{reason}");
    assert_eq!(for_cart(&decisions, "C-1002")[0].outcome, "sent");
    assert_eq!(t.read(&taken), "an older mail\n");
    assert_eq!(
        t.store().sends_in("failed"),
        [("C-1001".to_string(), "1h".to_string())]
    );
    // A hard bounce it is not: Ada's address is not suppressed.
    assert_eq!(
        t.store().count(&format!(
            "SELECT count(*) FROM suppressions WHERE email_norm = '{ADA}'"
        )),
        0
    );
}

#[test]
fn no_symbolic_link_planted_in_the_outbox_is_followed() {
    let t = shop(&Config::new(Transport::File)).file("outside/target", "precious\n");
    let target = t.join("outside/target");
    std::fs::create_dir_all(t.join("outbox")).unwrap();
    // Where a mail's partial file was and is named, and a mail's own name.
    let ada = mail_file("outbox", "C-1001", "1h", "eml");
    for link in [
        format!("{ada}.partial"),
        "outbox/C-1001.1h.eml.partial".to_string(),
        mail_file("outbox", "C-1002", "1h", "eml"),
        "outbox/C-1002.1h.eml".to_string(),
    ] {
        symlink(&target, t.join(link)).unwrap();
    }
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    assert_eq!(t.read("outside/target"), "precious\n");
    let decisions = out.decisions();
    assert_eq!(for_cart(&decisions, "C-1001")[0].outcome, "sent");
    assert!(
        !std::fs::symlink_metadata(t.join(&ada))
            .unwrap()
            .is_symlink()
    );
    assert!(t.read(&ada).contains("Cart C-1001 "));
    assert_eq!(for_cart(&decisions, "C-1002")[0].outcome, "failed");
}

#[test]
fn no_symbolic_link_planted_in_the_preview_is_followed() {
    let t = shop(&Config::new(Transport::File)).file("outside/target", "precious\n");
    let target = t.join("outside/target");
    std::fs::create_dir_all(t.join("preview")).unwrap();
    let planted = [
        "preview/index.html".to_string(),
        mail_file("preview", "C-1001", "1h", "eml"),
        mail_file("preview", "C-1001", "1h", "html"),
        "preview/C-1001.1h.eml".to_string(),
        "preview/C-1001.1h.html".to_string(),
    ];
    for link in &planted {
        symlink(&target, t.join(link)).unwrap();
    }
    t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW])
        .expect_success();
    assert_eq!(t.read("outside/target"), "precious\n");
    // The gallery's own files replaced the links.
    for written in &planted[..3] {
        let meta = std::fs::symlink_metadata(t.join(written)).unwrap();
        assert!(meta.is_file(), "{written}");
    }
    assert!(t.read("preview/index.html").contains("recart preview"));
}

#[test]
fn files_recart_creates_are_for_its_owner_only() {
    let t = shop(&Config::new(Transport::File))
        .file(
            "bad.csv",
            CARTS_CSV.replace("2026-11-21T11:40:00Z", "yesterday"),
        )
        .umask(0o022);
    t.recart(&["import", "--errors", "rejected.csv", "bad.csv"])
        .expect_status(3);
    assert!(t.read("rejected.csv").contains("yesterday"));
    t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW])
        .expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    let mut files = vec!["rejected.csv".to_string(), "recart.db".to_string()];
    files.extend(
        t.files_in("outbox", ".eml")
            .iter()
            .map(|p| p.display().to_string()),
    );
    files.extend(
        t.files_in("preview", ".eml")
            .iter()
            .map(|p| p.display().to_string()),
    );
    files.extend(
        t.files_in("preview", ".html")
            .iter()
            .map(|p| p.display().to_string()),
    );
    // 2 mails, each in the outbox and the gallery (twice), and the index.
    assert_eq!(files.len(), 2 + 2 + 2 + 2 + 1, "{files:?}");
    // SQLite gives a store's `-wal` and `-shm` the store's mode: they
    // exist while a connection is open.
    let store = t.store();
    store.count("SELECT count(*) FROM sends");
    files.extend(["recart.db-wal".to_string(), "recart.db-shm".to_string()]);
    for file in &files {
        assert_eq!(mode(&t, file), 0o600, "{file}");
    }
    drop(store);

    let t = Test::new().umask(0o022);
    t.recart(&["init", "shop"]).expect_success();
    assert_eq!(mode(&t, "shop/recart.secret"), 0o600);
    // What is not secret stays readable.
    assert_eq!(mode(&t, "shop/recart.toml"), 0o644);
}

#[test]
fn init_keeps_a_secret_that_is_there_and_writes_through_no_link() {
    let t = Test::new().file("shop/recart.secret", "mine\n");
    t.recart(&["init", "shop"]).expect_success();
    assert_eq!(t.read("shop/recart.secret"), "mine\n");

    // A dangling link: `init` once created its target.
    let t = Test::new();
    std::fs::create_dir_all(t.join("shop")).unwrap();
    symlink(t.join("stolen.key"), t.join("shop/recart.secret")).unwrap();
    t.recart(&["init", "shop"]).expect_success();
    assert!(
        !t.exists("stolen.key"),
        "the key was written through the link"
    );
}
