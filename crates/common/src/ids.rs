//! Identifiers. Servers, tables and tablets are named by 32-hex-digit UUIDs, as in
//! YugabyteDB; a [`TabletId`] also has a fixed 16-byte form used as the key prefix of that
//! tablet's rows in the storage engine.

/// Identifies a server (mserver or dbserver); persisted in its data directory.
pub type ServerId = String;
/// Identifies a table.
pub type TableId = String;
/// Identifies a tablet; also the name of its Raft group.
pub type TabletId = String;

/// A fresh random 32-hex-digit id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The 16-byte storage prefix of an id. Ids that are not 32 hex digits (such as the
/// catalog's `sys.catalog`) are hashed into 16 bytes deterministically.
pub fn id_prefix(id: &str) -> [u8; 16] {
    if let Ok(u) = uuid::Uuid::parse_str(id) {
        return *u.as_bytes();
    }
    // FNV-1a 128 over the bytes: stable across versions and platforms.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in id.as_bytes() {
        h ^= *b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stable_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_ne!(id_prefix(&a), id_prefix(&b));
        assert_eq!(id_prefix("sys.catalog"), id_prefix("sys.catalog"));
        assert_ne!(id_prefix("sys.catalog"), id_prefix("sys.catalog2"));
    }
}
