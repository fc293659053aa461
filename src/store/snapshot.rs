//! What the store keeps of a cart snapshot besides its fields: the
//! snapshot hash that tells a re-imported snapshot from a changed one, and
//! the encoded items, both computed where the cart was read.

use sha2::{Digest, Sha256};

use crate::model::{Cart, Snapshot};

use super::items::encode_items;

impl Snapshot {
    /// Hashes the carts and encodes their items for the store. Called on
    /// the reader thread of a large import, so that this work is off the
    /// store's thread.
    pub fn hash_all(carts: Vec<Cart>) -> Vec<Snapshot> {
        let mut buffer = Vec::with_capacity(1024);
        carts
            .into_iter()
            .map(|cart| Snapshot {
                hash: snapshot_hash(&cart, &mut buffer),
                items: encode_items(&cart.items),
                cart,
            })
            .collect()
    }
}

/// Tags the current snapshot hash; a new encoding gets a new tag.
const SNAPSHOT_HASH_V2: &[u8] = b"recart snapshot v2\0";

/// The snapshot hash (v2): SHA-256 over a compact, length-prefixed encoding
/// of every stored field of the cart and its items. `buffer` is scratch
/// space reused across a batch. Stored in every store: a new encoding
/// needs a new tag and the old hash as a fallback (as
/// [`legacy_snapshot_hash`] is for the first release's).
pub(crate) fn snapshot_hash(cart: &Cart, buffer: &mut Vec<u8>) -> [u8; 32] {
    fn text(buffer: &mut Vec<u8>, text: &str) {
        buffer.extend_from_slice(&(text.len() as u64).to_le_bytes());
        buffer.extend_from_slice(text.as_bytes());
    }
    fn int(buffer: &mut Vec<u8>, value: i64) {
        buffer.extend_from_slice(&value.to_le_bytes());
    }
    buffer.clear();
    buffer.extend_from_slice(SNAPSHOT_HASH_V2);
    text(buffer, &cart.id);
    text(buffer, &cart.email);
    text(buffer, &cart.first_name);
    text(buffer, &cart.locale);
    text(buffer, cart.currency.as_str());
    text(buffer, cart.status.as_str());
    buffer.push(u8::from(cart.accepts_marketing));
    int(buffer, cart.created_at.timestamp());
    int(buffer, i64::from(cart.created_at.timestamp_subsec_nanos()));
    int(buffer, cart.updated_at.timestamp());
    int(buffer, i64::from(cart.updated_at.timestamp_subsec_nanos()));
    // An unknown offset hashes as a zero one did: until recart told them
    // apart, `Z` and zone-less times were stored as 0, and re-importing
    // such a snapshot is no change (migration 12 made those 0s unknown).
    buffer.push(1);
    int(buffer, i64::from(cart.utc_offset_seconds.unwrap_or(0)));
    text(buffer, &cart.timezone);
    text(buffer, &cart.phone);
    buffer.push(u8::from(cart.sms_consent));
    int(
        buffer,
        i64::try_from(cart.items.len()).expect("a length fits in an i64"),
    );
    for item in &cart.items {
        text(buffer, &item.sku);
        text(buffer, &item.name);
        text(buffer, &item.category);
        int(buffer, i64::from(item.quantity));
        int(buffer, item.unit_price_minor);
        text(buffer, &item.image_url);
        text(buffer, &item.product_url);
    }
    Sha256::digest(&buffer[..]).into()
}

/// The hash the first release stored (SHA-256 of the cart as JSON). A store
/// written by it still holds these: a snapshot whose v2 hash differs from
/// the stored one is compared with this too before it counts as changed,
/// so an upgrade does not rewrite every cart once.
pub(super) fn legacy_snapshot_hash(cart: &Cart) -> Vec<u8> {
    let json = serde_json::to_vec(cart).expect("a cart serialises");
    Sha256::digest(json).to_vec()
}
