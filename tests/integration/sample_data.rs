//! The bundled sample data, as the README uses it.

use std::path::Path;

use crate::harness::Test;

#[test]
fn bundled_sample_data_dry_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A clean environment: the sample config falls back to its secret_file.
    let t = Test::new();
    // sample-data/recart.toml refers to ../templates: keep that relationship.
    t.copy_dir(root.join("sample-data"), "sample-data");
    t.copy_dir(root.join("templates"), "templates");
    // As checked out: what running the README's command there left behind
    // (its store, its outbox) would make everyone sent already.
    for left in [
        "recart.db",
        "recart.db-wal",
        "recart.db-shm",
        "recart.db.lock",
    ] {
        let _ = std::fs::remove_file(t.join("sample-data").join(left));
    }
    let _ = std::fs::remove_dir_all(t.join("sample-data/outbox"));

    let args = [
        "--config",
        "sample-data/recart.toml",
        "run",
        "--now",
        "2026-11-21T12:00:00Z",
        "--dry-run",
    ];
    let out = t.recart(&args);
    out.expect_success();
    assert!(!out.stdout.trim().is_empty(), "dry-run printed no table");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = t.recart(&json_args);
    out.expect_success();
    let decisions = out.decisions();
    assert!(
        decisions.iter().any(|d| d.outcome == "send"),
        "the sample data has nobody due at 2026-11-21T12:00:00Z: {decisions:#?}"
    );
    assert!(
        decisions.iter().any(|d| d.outcome == "skip"),
        "the sample data shows no skip: {decisions:#?}"
    );
    assert!(
        decisions
            .iter()
            .all(|d| d.outcome == "send" || d.outcome == "skip")
    );

    // Nothing was sent or recorded.
    let config: toml::Table = t.read("sample-data/recart.toml").parse().unwrap();
    if let Some(path) = config
        .get("store")
        .and_then(|s| s.get("path"))
        .and_then(|p| p.as_str())
    {
        let store = Path::new("sample-data").join(path);
        if t.exists(&store) {
            let store = t.store_at(&store);
            if store.has_table("sends") {
                assert_eq!(store.sends(), [], "dry-run recorded sends");
            }
        }
    }
    for entry in walk(t.path()) {
        assert!(
            !entry.to_string_lossy().ends_with(".eml"),
            "dry-run wrote {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
