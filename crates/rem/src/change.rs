//! The change log as the engine reads it: records after a sequence number, and the
//! catch-up loop that keeps in-memory state derived from the store (vector indexes,
//! the node directory) current. The record layouts are in `format/changes.rs`.
//!
//! Every write path — local writes, schema registration, replication — appends its
//! change records in the same batch as its data, so state that applies the log after
//! its own sequence number sees every write; an entity record holds the entity's
//! whole state, so applying one twice is harmless.

use rem_storage::{ColumnFamily, Store};

use crate::format::changes::{change_key, parse_change_key};
use crate::{Error, Result};

pub use crate::format::changes::{decode_change, Change};

/// Change records read per step while catching up.
const CATCH_UP_BATCH: usize = 4096;

/// Change-log records after sequence number `after` (at most `max`), in order, as
/// `(seq, record)`.
pub(crate) fn changes_since(store: &Store, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
    let start = change_key(after.saturating_add(1));
    let mut out = Vec::new();
    for item in store
        .scan_range(ColumnFamily::ChangeLog, &start, None)?
        .take(max)
    {
        let (k, v) = item?;
        let seq = parse_change_key(&k).ok_or_else(|| {
            Error::Storage(rem_storage::StorageError::Corrupt("change-log key".into()))
        })?;
        out.push((seq, v));
    }
    Ok(out)
}

/// Brings state that reflects the change log up to sequence `seq` up to `last` (at
/// least): every later record, decoded, is given to `apply` in order.
///
/// Returns the sequence number of the last record applied (`seq` when there was
/// nothing to apply), or `None` when the log no longer holds the record after `seq`
/// (retention removed it): the caller's state cannot be brought up to date and must
/// be rebuilt from the store.
pub(crate) fn catch_up(
    store: &Store,
    mut seq: u64,
    last: u64,
    mut apply: impl FnMut(Change) -> Result<()>,
) -> Result<Option<u64>> {
    while seq < last {
        let records = changes_since(store, seq, CATCH_UP_BATCH)?;
        match records.first() {
            Some((first, _)) if *first == seq + 1 => {}
            _ => return Ok(None),
        }
        for (at, bytes) in records {
            apply(decode_change(&bytes)?)?;
            seq = at;
        }
    }
    Ok(Some(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::changes::encode_put;
    use crate::{Entity, EntityId};

    fn record(key: &str) -> Vec<u8> {
        let t = crate::entity::now();
        let entity = Entity {
            id: EntityId::from_key("t", "x", key),
            table: "x".into(),
            created_at: t,
            modified_at: t,
            deleted_at: None,
            edges: vec![],
            properties: Default::default(),
        };
        encode_put("t", "x", &entity.encode())
    }

    #[test]
    fn catch_up_applies_every_later_record_or_reports_a_truncated_log() {
        let store = Store::open_in_memory(&Default::default()).unwrap();
        let records: Vec<Vec<u8>> = (0..5).map(|i| record(&i.to_string())).collect();
        store.commit(store.batch(), &records).unwrap();
        assert_eq!(changes_since(&store, 3, 10).unwrap().len(), 2);
        let mut seen = Vec::new();
        let reached = catch_up(&store, 2, store.last_seq(), |c| {
            if let Change::Put { entity, .. } = c {
                seen.push(entity.id);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(reached, Some(5));
        let want: Vec<EntityId> = (2..5)
            .map(|i| EntityId::from_key("t", "x", &i.to_string()))
            .collect();
        assert_eq!(seen, want);
        // Nothing to do at the end of the log.
        assert_eq!(
            catch_up(&store, 5, 5, |_| panic!("nothing to apply")).unwrap(),
            Some(5)
        );
        // Retention removed records 1 and 2: state at 1 cannot catch up.
        store.truncate_change_log(3).unwrap();
        assert_eq!(
            catch_up(&store, 1, 5, |_| panic!("nothing to apply")).unwrap(),
            None
        );
        assert_eq!(catch_up(&store, 2, 5, |_| Ok(())).unwrap(), Some(5));
    }
}
