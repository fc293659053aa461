use super::*;

#[test]
fn two_overlapping_runs_send_every_reminder_once() {
    const CARTS: usize = 2000;
    let Some(binary) = smtp_sink_or_skip("two_overlapping_runs_send_every_reminder_once") else {
        return;
    };
    let mut sink = Sink::start(&binary, &[]);
    let t = big_shop(CARTS, sink.port(), 4);

    // Started at the same instant: one gives up at once (exit 4) or, with
    // --wait, runs after the other and finds nothing left to send.
    let (a, b, c) = thread::scope(|scope| {
        let a = scope.spawn(|| t.recart(&["run", "--json", "--now", NOW]));
        let b = scope.spawn(|| t.recart(&["run", "--json", "--now", NOW]));
        let c = scope.spawn(|| t.recart(&["run", "--json", "--wait", "--now", NOW]));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    let runs = [&a, &b, &c];
    let busy: Vec<&&Output> = runs.iter().filter(|o| o.status == 4).collect();
    for out in &busy {
        assert!(out.stdout.trim().is_empty(), "{out:?}");
        // The lock is the store file's own (whatever path names it).
        out.expect_stderr_contains("another recart run holds")
            .expect_stderr_contains("recart.db");
    }
    c.expect_success();
    assert!(
        a.status == 4 || b.status == 4,
        "neither plain run was refused the lock: {}, {}",
        a.status,
        b.status
    );
    let mut sent = Vec::new();
    for out in runs.iter().filter(|o| o.status != 4) {
        out.expect_success();
        sent.extend(carts_with(&out.decisions(), "sent"));
    }
    let distinct: BTreeSet<_> = sent.iter().collect();
    assert_eq!(distinct.len(), sent.len(), "a cart was reported sent twice");
    assert_eq!(sent.len(), CARTS);

    sink.wait_for(CARTS);
    let messages = sink.settle(Duration::from_millis(300));
    assert_no_duplicates(&messages);
    assert_eq!(messages.len(), CARTS);
    let keys: BTreeSet<_> = keys(&messages).into_iter().collect();
    let book = ledger(&t);
    assert_eq!(
        states(&book).get("sent").copied(),
        Some(CARTS),
        "{:?}",
        states(&book)
    );
    assert!(book.keys().all(|k| keys.contains(k)));
}
