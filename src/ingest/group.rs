//! Rows → groups (a cart, an order) by key, streamed in batches.
//!
//! Exports write the rows of one cart together, so a group is complete when
//! a row with another key arrives. Groups are collected into a batch of
//! `Options::batch` and handed to the sink when the batch is full. Rows of a
//! group that come back later while their group is still in the batch are
//! added to it; rows of a group already handed over (an earlier batch) are
//! rejected, naming the cart, and the file should be sorted and imported
//! again — a cart is never stored as two halves.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::BuildHasher;

// A seeded foldhash: a row hashes its key a few times, SipHash was a
// noticeable share of a large import.
use foldhash::fast::RandomState;

use crate::error::Result;
use crate::model::{Cart, Order};

use super::table::{Row, Table};
use super::{Options, RowError, Sink, Summary};

/// How one format ties rows into groups.
pub(crate) trait Grouping {
    type Item: Emit;
    /// What a group is called in messages: "cart", "order".
    const NOUN: &'static str;
    /// Columns the header must have.
    fn required(&self) -> &'static [&'static str];
    /// The field holding the key, for messages.
    fn key_field(&self) -> &'static str;
    /// The key tying a row to its group; an error rejects the row alone.
    fn key(&self, row: &Row<'_>) -> Result<String, RowError>;
    /// The group's first row: the item, or `None` when the group cannot be
    /// used though nothing is wrong with it (it is skipped).
    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Self::Item>, RowError>;
    /// A later row of the group.
    fn add(&self, row: &Row<'_>, item: &mut Self::Item) -> Result<(), RowError>;
}

/// Hands a batch of finished items to the sink.
pub(crate) trait Emit: Sized {
    fn emit(items: Vec<Self>, sink: &mut dyn Sink) -> Result<()>;
}

impl Emit for Cart {
    fn emit(items: Vec<Self>, sink: &mut dyn Sink) -> Result<()> {
        sink.carts(items)
    }
}

impl Emit for crate::model::Product {
    fn emit(items: Vec<Self>, sink: &mut dyn Sink) -> Result<()> {
        sink.products(items)
    }
}

impl Emit for Order {
    fn emit(items: Vec<Self>, sink: &mut dyn Sink) -> Result<()> {
        sink.orders(items)
    }
}

enum State<T> {
    Good(T),
    Rejected,
    Skipped,
}

struct Group<T> {
    state: State<T>,
    rows: u64,
}

struct Batch<'s, T> {
    groups: Vec<Group<T>>,
    index: HashMap<String, usize, RandomState>,
    /// Hashes of the keys handed over in earlier batches: 8 bytes a group.
    done: HashSet<u64, RandomState>,
    hasher: RandomState,
    summary: Summary,
    sink: &'s mut dyn Sink,
}

impl<T: Emit> Batch<'_, T> {
    fn reject(&mut self, mut error: RowError, noun: &str, key: &str) -> Result<()> {
        // Writing to a String cannot fail.
        let _ = write!(error.message, "; {noun} {key} not imported");
        self.sink.rejected(error)
    }

    fn flush(&mut self, position: u64) -> Result<()> {
        let mut items = Vec::with_capacity(self.groups.len());
        for group in self.groups.drain(..) {
            if let State::Good(item) = group.state {
                items.push(item);
            }
        }
        for key in self.index.drain().map(|(key, _)| key) {
            self.done.insert(self.hasher.hash_one(&key));
        }
        if !items.is_empty() {
            T::emit(items, self.sink)?;
        }
        self.sink.progress(position);
        Ok(())
    }
}

pub(crate) fn read<G: Grouping>(
    table: &mut Table,
    grouping: &G,
    options: &Options,
    sink: &mut dyn Sink,
) -> Result<Summary> {
    table.header().require_columns(grouping.required())?;
    let mut batch: Batch<'_, G::Item> = Batch {
        groups: Vec::new(),
        index: HashMap::default(),
        done: HashSet::default(),
        hasher: RandomState::default(),
        summary: Summary::default(),
        sink,
    };
    let limit = options.batch.max(1);
    loop {
        let position = table.position;
        let Some(row) = table.next_row()? else {
            break;
        };
        batch.summary.rows += 1;
        let key = match grouping.key(&row) {
            Ok(key) => key,
            Err(error) => {
                batch.summary.rejected_rows += 1;
                batch.sink.rejected(error)?;
                continue;
            }
        };
        if let Some(&index) = batch.index.get(&key) {
            let group = &mut batch.groups[index];
            group.rows += 1;
            match &mut group.state {
                State::Good(item) => {
                    if let Err(error) = row.check_shape().and_then(|()| grouping.add(&row, item)) {
                        batch.summary.rejected_rows += group.rows;
                        group.state = State::Rejected;
                        batch.reject(error, G::NOUN, &key)?;
                    }
                }
                State::Rejected => batch.summary.rejected_rows += 1,
                State::Skipped => batch.summary.skipped_rows += 1,
            }
            continue;
        }
        if batch.groups.len() >= limit {
            // The previous group ended with the previous row.
            batch.flush(position)?;
        }
        let state = if batch.done.contains(&batch.hasher.hash_one(&key)) {
            let error = row.error(
                grouping.key_field(),
                format!(
                    "the rows of {noun} {key} are not together: its rows above were imported \
                     already, without this one; sort the file by {noun} and import it again",
                    noun = G::NOUN
                ),
            );
            batch.summary.rejected_rows += 1;
            batch.sink.rejected(error)?;
            State::Rejected
        } else {
            match row.check_shape().and_then(|()| grouping.start(&row, &key)) {
                Ok(Some(item)) => State::Good(item),
                Ok(None) => {
                    batch.summary.skipped_rows += 1;
                    State::Skipped
                }
                Err(error) => {
                    batch.summary.rejected_rows += 1;
                    batch.reject(error, G::NOUN, &key)?;
                    State::Rejected
                }
            }
        };
        batch.index.insert(key, batch.groups.len());
        batch.groups.push(Group { state, rows: 1 });
    }
    batch.flush(table.position)?;
    Ok(batch.summary)
}
