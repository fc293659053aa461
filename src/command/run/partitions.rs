//! Several workers on one PostgreSQL store share a run by partition: the
//! window's carts are split by a hash of their address, and each partition
//! is planned and sent by one worker at a time (an advisory lock), so that
//! per-address rules (superseded, cooldown, caps) are decided by one
//! worker. A worker goes through the partitions it can take at once, then
//! waits for the others': those a live worker finishes are done; those a
//! dead worker held come free with its connection and are taken over.

use std::sync::mpsc;

use chrono::{DateTime, Utc};

use super::{Batches, RunOptions, record_passed_over};
use crate::compose::Composer;
use crate::config::Config;
use crate::deliver::ledger;
use crate::error::Result;
use crate::plan::{self, Candidate, History, Policy};
use crate::store::postgres::{PARTITIONS, partition_of};
use crate::store::{Store, Taken};

/// Whether this run shares its work with other workers: a real run on
/// PostgreSQL (a dry run, a test send or `--cart` plans alone).
pub(super) fn shared(store: &Store, options: &RunOptions) -> bool {
    store.is_postgres() && !options.discards() && options.cart.is_none() && options.step.is_none()
}

/// One run's window, as read at its start.
pub(super) struct Window<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub policy: &'a Policy,
    pub candidates: &'a [Candidate],
    pub oldest: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub run_id: i64,
}

/// A second connection on a thread of its own, for reads only (see
/// [`Window::history_of`]): it answers each request of carts and
/// addresses with their history.
struct Reader {
    requests: mpsc::Sender<(Vec<String>, Vec<String>)>,
    answers: mpsc::Receiver<Result<History>>,
}

/// From how many carts in the window a run reads the ledger on two
/// connections (below it, a second connection costs more than it saves).
const READ_IN_HALVES: usize = 2_000;

impl Window<'_> {
    /// Plans and sends the partitions this worker takes: first those free
    /// now (starting at a place of its own, so that workers starting
    /// together spread), then, waiting, those other workers held.
    pub(super) fn send_by_partition(
        &self,
        batches: &mut Batches<'_, '_>,
        composer: &Composer<'_>,
    ) -> Result<()> {
        if self.candidates.len() < READ_IN_HALVES {
            return self.send_partitions(batches, composer, None);
        }
        std::thread::scope(|scope| {
            let (requests, asked) = mpsc::channel::<(Vec<String>, Vec<String>)>();
            let (answer, answers) = mpsc::channel();
            let (oldest, now, policy, config) = (self.oldest, self.now, self.policy, self.config);
            scope.spawn(move || {
                // A server or role that allows this worker one connection:
                // the thread ends, and every read goes over the first.
                let Ok(store) = Store::open_configured(config) else {
                    return;
                };
                for (ids, addresses) in asked {
                    let history = store.history_of(&ids, &addresses, oldest, now, policy);
                    if answer.send(history).is_err() {
                        return;
                    }
                }
            });
            let reader = Reader { requests, answers };
            // The reader's thread ends when its requests do.
            self.send_partitions(batches, composer, Some(&reader))
        })
    }

    fn send_partitions(
        &self,
        batches: &mut Batches<'_, '_>,
        composer: &Composer<'_>,
        reader: Option<&Reader>,
    ) -> Result<()> {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS as usize];
        for (index, candidate) in self.candidates.iter().enumerate() {
            members[partition_of(&candidate.email_norm) as usize].push(index);
        }
        let start = u32::try_from(self.run_id.rem_euclid(i64::from(PARTITIONS))).unwrap_or(0);
        let order = (0..PARTITIONS).map(|offset| (start + offset) % PARTITIONS);
        let mut held_by_others = Vec::new();
        for partition in order {
            let carts = &members[partition as usize];
            if carts.is_empty() {
                continue;
            }
            match self.store.take_partition(partition, self.run_id, false)? {
                Taken::Yes => self.send(partition, carts, batches, composer, reader)?,
                Taken::Held => held_by_others.push(partition),
                Taken::Done => {}
            }
        }
        for partition in held_by_others {
            if self.store.take_partition(partition, self.run_id, true)? == Taken::Yes {
                self.send(
                    partition,
                    &members[partition as usize],
                    batches,
                    composer,
                    reader,
                )?;
            }
        }
        Ok(())
    }

    /// Plans partition `partition` (its carts: `members`) and sends what is
    /// due; it is done unless the run was stopped or its transport failed.
    fn send(
        &self,
        partition: u32,
        members: &[usize],
        batches: &mut Batches<'_, '_>,
        composer: &Composer<'_>,
        reader: Option<&Reader>,
    ) -> Result<()> {
        let carts: Vec<Candidate> = members
            .iter()
            .map(|&index| self.candidates[index].clone())
            .collect();
        // Other workers may have sent to these addresses since this one
        // started, or died sending: their claims are settled (released
        // ones due again in this run), and the ledger read as it is now.
        let recovered = ledger::recover(
            self.store,
            &self.config.store_path,
            self.run_id,
            self.now,
            &self.config.delivery,
        )?;
        batches.printer.summary.recovered.add(recovered);
        let ids: Vec<String> = carts.iter().map(|cart| cart.id.clone()).collect();
        let mut addresses: Vec<String> = carts.iter().map(|cart| cart.email_norm.clone()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        let history = self.history_of(&ids, &addresses, reader)?;
        let mut decisions = plan::plan(&carts, &history, self.policy, &self.config.steps, self.now);
        for decision in &mut decisions {
            decision.cart = members[decision.cart];
        }
        record_passed_over(
            self.store,
            self.config,
            self.candidates,
            &decisions,
            self.run_id,
            self.now,
        )?;
        // Done once its mails are claimed (some may still be on their way:
        // if this worker dies with them, a run after it, which passes by no
        // partition of a dead run, sends what it had not handed over).
        batches.run(composer, &decisions)?;
        let done = batches.settled.fatal.is_none() && !batches.stopping();
        self.store.finish_partition(partition, self.run_id, done)
    }

    /// What the plan needs of the past of a partition's carts: with a
    /// second connection, half the carts and addresses read on each at
    /// once (the server's lookups are most of an idle run's time, and
    /// recart waits for them). The reader only reads, after the partition
    /// was taken: every write still goes over the connection holding the
    /// locks.
    fn history_of(
        &self,
        ids: &[String],
        addresses: &[String],
        reader: Option<&Reader>,
    ) -> Result<History> {
        let (oldest, now, policy) = (self.oldest, self.now, self.policy);
        let Some(reader) = reader else {
            return self.store.history_of(ids, addresses, oldest, now, policy);
        };
        let (ids, other_ids) = ids.split_at(ids.len() / 2);
        let (addresses, other_addresses) = addresses.split_at(addresses.len() / 2);
        let asked = reader
            .requests
            .send((other_ids.to_vec(), other_addresses.to_vec()))
            .is_ok();
        let mut history = self.store.history_of(ids, addresses, oldest, now, policy)?;
        let other = match reader.answers.recv() {
            Ok(other) if asked => other?,
            // Its thread is gone (no second connection could be had, or
            // it panicked): read here.
            _ => self
                .store
                .history_of(other_ids, other_addresses, oldest, now, policy)?,
        };
        history.absorb(other);
        Ok(history)
    }
}
