use super::*;
use proptest::prelude::*;

/// A random world: carts over a few addresses, orders, suppressions, a
/// random policy and a random sequence (e-mail and webhook steps, some
/// requiring SMS consent or a minimum value, some capped across channels).
/// The simulation then runs the plan hour after hour, applying its
/// decisions to the history as a real run would; between runs a cart's
/// consent may change, and a webhook may be refused for good.
#[derive(Debug, Clone)]
struct World {
    carts: Vec<Candidate>,
    orders: Vec<(String, OrderFact)>,
    suppressed: Vec<String>,
    policy: Policy,
    steps: Vec<Step>,
    /// Hours to the next run; the cart whose consents flip before it; whether
    /// that run's webhook calls are refused for good.
    runs: Vec<(i64, usize, bool)>,
}

/// Step `index` of a random sequence: `(webhook, needs SMS consent, a
/// minimum of 60.00, cross-channel caps)`.
fn random_step(index: usize, shape: (bool, bool, bool, bool), consent: bool) -> Step {
    let (webhook, sms, minimum, cross) = shape;
    let mut step = step(&format!("s{index}"), [1, 24, 72][index]);
    step.require_consent = consent;
    if webhook {
        step.channel = Channel::Webhook(Webhook {
            url: "https://hooks.example/cart".into(),
            headers: Vec::new(),
            secret_env: None,
            timeout: std::time::Duration::from_secs(1),
        });
        step.require_sms_consent = sms;
    }
    if minimum {
        step.filters.min_value = Some(Threshold::Any(Decimal::new(6000, 2)));
    }
    step.cross_channel = cross;
    step
}

fn world() -> impl Strategy<Value = World> {
    let cart = (
        0..6u8,
        0..200i64,
        (any::<bool>(), any::<bool>()),
        0..3u8,
        0..4u8,
        prop::option::of(0..3u8),
        any::<bool>(),
    )
        .prop_map(|(address, idle, consents, status, sku, zone, big)| {
            let id_seed = idle * 7 + i64::from(address);
            let mut cart = cart(&format!("c{id_seed}"), idle);
            cart.email_norm = format!("a{address}@example.com");
            cart.email = cart.email_norm.clone();
            (cart.accepts_marketing, cart.sms_consent) = consents;
            cart.status = match status {
                0 => CartStatus::Ordered,
                _ => CartStatus::Open,
            };
            let total = if big { 8000 } else { 5000 };
            cart.items = vec![CandidateItem::new(&format!("SKU-{sku}"), "cat", total)];
            cart.total_minor = total;
            cart.timezone = zone
                .map(|z| ["Europe/Stockholm", "America/New_York", "Asia/Tokyo"][z as usize].into());
            cart
        });
    let order = (0..6u8, 0..400i64, 0..4u8).prop_map(|(address, hours_ago, sku)| {
        (
            format!("a{address}@example.com"),
            OrderFact {
                created_at: now() - TimeDelta::hours(hours_ago),
                skus: HashSet::from([format!("SKU-{sku}")]),
            },
        )
    });
    let shape = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (
        prop::collection::vec(cart, 1..12),
        prop::collection::vec(order, 0..4),
        prop::collection::vec(0..6u8, 0..2),
        (0..30i64, prop::option::of(1..4u32), any::<bool>()),
        (any::<bool>(), prop::collection::vec(shape, 3)),
        prop::collection::vec((1..30i64, 0..12usize, prop::bool::weighted(0.2)), 1..8),
    )
        .prop_map(
            |(mut carts, orders, suppressed, (cooldown, cap, quiet), (consent, shapes), runs)| {
                carts.sort_by(|a, b| a.id.cmp(&b.id));
                carts.dedup_by(|a, b| a.id == b.id);
                World {
                    carts,
                    orders,
                    suppressed: suppressed
                        .iter()
                        .map(|a| format!("a{a}@example.com"))
                        .collect(),
                    policy: Policy {
                        cooldown: TimeDelta::hours(cooldown),
                        max_per_address: cap,
                        window: TimeDelta::days(2),
                        quiet_hours: quiet.then(|| QuietHours {
                            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
                            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                        }),
                        ..Policy::default()
                    },
                    steps: shapes
                        .into_iter()
                        .enumerate()
                        .map(|(index, shape)| random_step(index, shape, consent))
                        .collect(),
                    runs,
                }
            },
        )
}

/// Whether `cart` meets `step`'s conditions: consent, SMS consent, value.
fn qualifies(cart: &Candidate, step: &Step) -> bool {
    (!step.require_consent || cart.accepts_marketing)
        && (!step.require_sms_consent || cart.sms_consent)
        && (step.filters.min_value.is_none() || cart.total_minor >= 6000)
}

/// What the simulation's ledger holds of a (cart, step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Sent,
    PassedOver,
    /// A webhook refused for good.
    Refused,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_over_many_runs(world in world()) {
        let World { mut carts, steps, policy, .. } = world.clone();
        let mut history = History::default();
        for (address, order) in &world.orders {
            history.orders.entry(address.clone()).or_default().push(order.clone());
        }
        history.suppressed = world.suppressed.iter().cloned().collect();
        let mut ledger: HashMap<(String, String), Done> = HashMap::new();
        // Address → (when, channel) of every reminder it got.
        let mut sent_times: HashMap<String, Vec<(DateTime<Utc>, ChannelKind)>> = HashMap::new();
        let mut now = now();
        for &(hours, flip, refuse) in &world.runs {
            now += TimeDelta::hours(hours);
            // A new snapshot may change the cart's consents.
            let flipped = flip % carts.len();
            carts[flipped].accepts_marketing ^= true;
            carts[flipped].sms_consent ^= true;
            let decisions = plan(&carts, &history, &policy, &steps, now);
            // One decision per cart besides the steps passed over, which come first.
            let main = decisions
                .iter()
                .filter(|d| !matches!(d.verdict, Verdict::PassOver(_)))
                .count();
            prop_assert_eq!(main, carts.len());
            let passes = decisions
                .iter()
                .take_while(|d| matches!(d.verdict, Verdict::PassOver(_)))
                .count();
            prop_assert_eq!(passes, decisions.len() - main);
            let mut this_run: HashSet<&str> = HashSet::new();
            for decision in &decisions {
                let cart = &carts[decision.cart];
                let key = |index: usize| (cart.id.clone(), steps[index].name.clone());
                let earlier_done = |index: usize, ledger: &HashMap<(String, String), Done>| {
                    (0..index).all(|earlier| ledger.contains_key(&key(earlier)))
                };
                match decision.verdict {
                    Verdict::PassOver(reason) => {
                        let index = decision.step.unwrap();
                        let step = &steps[index];
                        // Due, not qualifying, in order, and only once.
                        prop_assert!(reason.passes_over());
                        prop_assert!(now - cart.updated_at >= step.after);
                        prop_assert!(!qualifies(cart, step));
                        prop_assert!(earlier_done(index, &ledger));
                        prop_assert!(ledger.insert(key(index), Done::PassedOver).is_none());
                    }
                    Verdict::Send => {
                        let index = decision.step.unwrap();
                        let step = &steps[index];
                        // Never a second send, nor one passed over; steps in order.
                        prop_assert!(!ledger.contains_key(&key(index)));
                        prop_assert!(earlier_done(index, &ledger));
                        // Never to suppressed, non-qualifying, ordered or purchased.
                        prop_assert!(!history.suppressed.contains(&cart.email_norm));
                        prop_assert!(qualifies(cart, step));
                        prop_assert_eq!(cart.status, CartStatus::Open);
                        for (address, order) in &world.orders {
                            if *address == cart.email_norm {
                                prop_assert!(order.created_at < cart.updated_at);
                                let recent = now - order.created_at <= policy.purchased_within;
                                prop_assert!(!(recent && cart.items.iter().any(|item| order.skus.contains(&item.sku))));
                            }
                        }
                        // Due, and not at night.
                        prop_assert!(now - cart.updated_at >= step.after);
                        if let Some(quiet) = &policy.quiet_hours {
                            prop_assert!(!quiet.contains(local_time(cart, &policy, now)));
                        }
                        // One reminder per address per run; cooldown and cap
                        // across runs, on the step's channel or on all.
                        prop_assert!(this_run.insert(&cart.email_norm));
                        let kind = step.channel.kind();
                        let times = sent_times.entry(cart.email_norm.clone()).or_default();
                        let counted: Vec<DateTime<Utc>> = times
                            .iter()
                            .filter(|(_, channel)| step.cross_channel || *channel == kind)
                            .map(|(at, _)| *at)
                            .collect();
                        if policy.cooldown > TimeDelta::zero() {
                            prop_assert!(counted.iter().all(|&t| now - t >= policy.cooldown));
                        }
                        if let Some(cap) = policy.max_per_address {
                            let recent = counted.iter().filter(|&&t| now - t < policy.window).count();
                            prop_assert!(recent < cap as usize);
                        }
                        let refused = refuse && kind == ChannelKind::Webhook;
                        if !refused {
                            times.push((now, kind));
                        }
                        ledger.insert(key(index), if refused { Done::Refused } else { Done::Sent });
                    }
                    Verdict::Skip(_) => {}
                }
            }
            // Record the run as the store would.
            for decision in &decisions {
                let (cart, index) = (&carts[decision.cart], decision.step);
                let state = match (decision.verdict, index) {
                    (Verdict::PassOver(_), Some(_)) => SendState::Skipped,
                    (Verdict::Send, Some(index)) => {
                        match ledger[&(cart.id.clone(), steps[index].name.clone())] {
                            Done::Refused => SendState::Failed,
                            _ => SendState::Sent,
                        }
                    }
                    _ => continue,
                };
                let step = &steps[index.unwrap()];
                mark_at(&mut history, &cart.id, &step.name, state, 1, now);
                if state == SendState::Sent {
                    history.add_recent(cart.email_norm.clone(), now, &step.name);
                }
            }
        }
    }
}
