use crate::harness::Test;

#[test]
fn init_writes_a_config_that_runs_out_of_the_box() {
    let t = Test::new();
    t.recart(&["init", "shop"]).expect_success();

    let config: toml::Table = t
        .read("shop/recart.toml")
        .parse()
        .expect("init wrote valid TOML");
    let transport = config["transport"].as_table().expect("[transport]");
    assert_eq!(transport["kind"].as_str(), Some("file"));
    assert_eq!(transport["dir"].as_str(), Some("outbox"));
    let steps: Vec<&str> = config["steps"]
        .as_array()
        .expect("[[steps]]")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["1h", "24h", "72h"]);

    assert!(
        !t.files_in("shop/templates", ".subject").is_empty(),
        "no templates written"
    );
    assert!(
        !t.files_in("shop", ".csv").is_empty()
            || std::fs::read_dir(t.join("shop"))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .any(|d| !t.files_in(d.path(), ".csv").is_empty()),
        "no sample CSV written"
    );

    // `cd shop && recart run`, with a clean environment.
    let t = t.current_dir("shop");
    t.recart(&["run", "--dry-run"]).expect_success();
    t.recart(&["run"]).expect_success();
    t.recart(&["run"]).expect_success();
}

#[test]
fn init_does_not_overwrite_an_existing_config() {
    let t = Test::new().file("shop/recart.toml", "# mine\n");
    // Refusing or skipping the existing file are both fine; clobbering is not.
    t.recart(&["init", "shop"]);
    assert_eq!(t.read("shop/recart.toml"), "# mine\n");
}
