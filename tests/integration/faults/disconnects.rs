use super::*;

/// The server goes away after `accept` messages, in the middle of a run.
fn server_going_away(faults: &[&str], accept: Option<usize>, connections: usize) {
    const CARTS: usize = 60;
    let Some(binary) = smtp_sink_or_skip("server_going_away") else {
        return;
    };
    let mut dying = Sink::start(&binary, faults);
    let t = big_shop(CARTS, dying.port(), connections);

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(1)
        .expect_stderr_contains(&format!("127.0.0.1:{}", dying.port()));
    let decisions = out.decisions();
    if accept.is_some() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dying.exited() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(dying.exited(), "smtp-sink {faults:?} did not stop");
    }
    let first = dying.settle(Duration::from_millis(300));
    if let Some(accept) = accept {
        // Messages of other sessions in flight may still be taken.
        let most = accept + connections - 1;
        assert!(first.len() <= most, "{} > {most}", first.len());
    }
    assert_no_duplicates(&first);
    let received: BTreeSet<_> = keys(&first).into_iter().collect();
    let book = ledger(&t);

    // Nothing recorded sent that the sink did not take; everything it took
    // is sent or unknown.
    for (key, state) in &book {
        if state == "sent" {
            assert!(
                received.contains(key),
                "{key:?} is sent but the sink has no such mail"
            );
        }
    }
    for key in &received {
        let state = book.get(key).map(String::as_str);
        assert!(
            matches!(state, Some("sent" | "unknown")),
            "{key:?} reached the sink but is {state:?} in the ledger"
        );
    }
    assert!(
        !book.values().any(|s| s == "claimed"),
        "{:?}",
        states(&book)
    );
    // The rest is still due: printed as retry/not-sent, no ledger entry.
    let not_sent: Vec<_> = decisions
        .iter()
        .filter(|d| d.reason.as_deref() == Some("not-sent"))
        .collect();
    assert!(!not_sent.is_empty(), "{decisions:#?}");
    for d in &not_sent {
        assert_eq!(d.outcome, "retry");
        let key = (d.cart_id.clone(), "1h".to_string());
        assert!(!book.contains_key(&key), "{key:?}: {:?}", book.get(&key));
        assert!(!received.contains(&key));
    }
    assert_eq!(
        book.len() + not_sent.len(),
        CARTS,
        "every due mail is in the ledger or still due: {:?}",
        states(&book)
    );

    // A later run against a working server sends exactly the rest.
    let sink = Sink::start(&binary, &[]);
    retarget(&t, sink.port(), connections);
    let out = t.recart(&["run", "--json", "--now", &now_plus(5)]);
    out.expect_success();
    let unknown = book.values().filter(|s| *s == "unknown").count();
    let second =
        sink.wait_for(CARTS - book.len() + book.values().filter(|s| *s == "retry").count());
    let all: Vec<Dumped> = first.iter().chain(&second).cloned().collect();
    assert_no_duplicates(&all);
    let book = ledger(&t);
    assert_eq!(
        states(&book).get("sent").copied().unwrap_or(0) + unknown,
        CARTS,
        "{:?}",
        states(&book)
    );
    let everything: BTreeSet<_> = keys(&all).into_iter().collect();
    for (key, state) in &book {
        match state.as_str() {
            "sent" => assert!(everything.contains(key), "{key:?} sent, never received"),
            "unknown" => {}
            other => panic!("{key:?} is {other} after the recovery run"),
        }
    }
}

#[test]
fn server_terminating_after_some_messages_stops_the_run_and_loses_nothing() {
    // -M 7: smtp-sink exits after the 7th message, dropping every session.
    server_going_away(&["-M", "7"], Some(7), 1);
}

#[test]
fn server_terminating_under_parallel_connections_loses_nothing() {
    server_going_away(&["-M", "13"], Some(13), 4);
}

#[test]
fn server_hanging_up_after_the_message_leaves_it_unknown() {
    // -q .: disconnect without replying once the message is in: the first
    // mail of each connection has an unknown fate, the rest stays due.
    server_going_away(&["-q", "."], None, 2);
}
