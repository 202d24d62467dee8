//! [`MemEngine`]: an in-memory [`KvEngine`] for tests (nothing is durable).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use crate::{Cf, KvEngine, KvIter, Op, Result, WriteBatch};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory engine: one `BTreeMap` per column family behind a lock.
#[derive(Default)]
pub struct MemEngine {
    maps: RwLock<BTreeMap<Cf, Map>>,
}

impl MemEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvEngine for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        Ok(maps.get(&cf).and_then(|m| m.get(key)).cloned())
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => {
                    maps.entry(cf).or_default().insert(k, v);
                }
                Op::Delete(cf, k) => {
                    maps.entry(cf).or_default().remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        cf: Cf,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> KvIter<'_> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let mut items: Vec<_> = match maps.get(&cf) {
            Some(m) => m
                .range((start, end))
                .map(|(k, v)| Ok((k.clone(), v.clone())))
                .collect(),
            None => Vec::new(),
        };
        if reverse {
            items.reverse();
        }
        Box::new(items.into_iter())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn disk_space(&self) -> u64 {
        0
    }
}
