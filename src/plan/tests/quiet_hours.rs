use super::*;

fn quiet() -> Policy {
    Policy {
        quiet_hours: Some(QuietHours {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        }),
        ..policy()
    }
}

fn zoned(zone: &str, idle_hours: i64) -> Candidate {
    let mut cart = cart("c1", idle_hours);
    cart.timezone = Some(zone.into());
    cart
}

/// Decides at `when` for a cart idle 2 hours then.
fn quiet_at(zone: Option<&str>, offset: Option<i32>, when: &str) -> Verdict {
    let when = at(when);
    let mut cart = cart("c1", 0);
    cart.updated_at = when - TimeDelta::hours(2);
    cart.timezone = zone.map(str::to_string);
    cart.utc_offset_seconds = offset;
    plan(&[cart], &History::default(), &quiet(), &steps(), when)[0].verdict
}

#[test]
fn quiet_hours_follow_the_customers_clock() {
    assert_eq!(
        zoned("Europe/Stockholm", 2).timezone.as_deref(),
        Some("Europe/Stockholm")
    );
    // 12:00 UTC is 13:00 in Stockholm (winter) and 07:00 in New York.
    assert_eq!(
        quiet_at(Some("Europe/Stockholm"), None, "2026-11-21T12:00:00Z"),
        Verdict::Send
    );
    assert_eq!(
        quiet_at(Some("America/New_York"), None, "2026-11-21T12:00:00Z"),
        skip(SkipReason::QuietHours)
    );
    assert_eq!(
        quiet_at(Some("America/New_York"), None, "2026-11-21T13:00:00Z"),
        Verdict::Send
    );
    // Without a zone: the offset the input was written in…
    assert_eq!(
        quiet_at(None, Some(-5 * 3600), "2026-11-21T12:00:00Z"),
        skip(SkipReason::QuietHours)
    );
    // …else the policy's zone (UTC here): 12:00 is day.
    assert_eq!(quiet_at(None, None, "2026-11-21T12:00:00Z"), Verdict::Send);
    assert_eq!(
        quiet_at(None, None, "2026-11-21T22:00:00Z"),
        skip(SkipReason::QuietHours)
    );
}

/// An unknown offset (`Z`, zone-less and integer times) is the policy's
/// zone; a written offset is the customer's own, `+00:00` included.
#[test]
fn without_a_known_offset_the_policys_zone_holds_quiet_hours() {
    let new_york = Policy {
        timezone: "America/New_York".parse().unwrap(),
        ..quiet()
    };
    // 08:30 UTC is 03:30 in New York (EST), 14:00 in India, 08:30 in London.
    let decide = |offset: Option<i32>, when: &str| {
        let when = at(when);
        let mut cart = cart("c1", 0);
        cart.updated_at = when - TimeDelta::hours(2);
        cart.utc_offset_seconds = offset;
        plan(&[cart], &History::default(), &new_york, &steps(), when)[0].verdict
    };
    assert_eq!(
        decide(None, "2026-11-21T08:30:00Z"),
        skip(SkipReason::QuietHours)
    );
    assert_eq!(decide(None, "2026-11-21T13:00:00Z"), Verdict::Send);
    assert_eq!(decide(Some(19_800), "2026-11-21T08:30:00Z"), Verdict::Send);
    assert_eq!(decide(Some(0), "2026-11-21T08:30:00Z"), Verdict::Send);
    assert_eq!(
        decide(Some(0), "2026-11-21T07:30:00Z"),
        skip(SkipReason::QuietHours)
    );
}

#[test]
fn quiet_hours_are_right_across_dst_changes() {
    let stockholm = Some("Europe/Stockholm");
    // Spring forward 2026-03-29: 01:59 CET then 03:00 CEST. Quiet ends 08:00 local.
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-29T05:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-29T06:00:00Z"),
        Verdict::Send
    ); // 08:00 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-28T06:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 CET
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-28T07:00:00Z"),
        Verdict::Send
    ); // 08:00 CET
    // Fall back 2026-10-25: 21:00 local is 20:00 UTC the day before, 21:00 UTC after.
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-24T18:59:00Z"),
        Verdict::Send
    ); // 20:59 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-24T19:00:00Z"),
        skip(SkipReason::QuietHours)
    ); // 21:00 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-25T19:59:00Z"),
        Verdict::Send
    ); // 20:59 CET
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-25T20:00:00Z"),
        skip(SkipReason::QuietHours)
    ); // 21:00 CET
    let new_york = Some("America/New_York");
    // Spring forward 2026-03-08 (EST -5 → EDT -4); fall back 2026-11-01.
    assert_eq!(
        quiet_at(new_york, None, "2026-03-08T11:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 EDT
    assert_eq!(
        quiet_at(new_york, None, "2026-03-08T12:00:00Z"),
        Verdict::Send
    ); // 08:00 EDT
    assert_eq!(
        quiet_at(new_york, None, "2026-11-01T12:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 EST
    assert_eq!(
        quiet_at(new_york, None, "2026-11-01T13:00:00Z"),
        Verdict::Send
    ); // 08:00 EST
}
