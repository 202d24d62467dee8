//! Numbered status codes. Each crate's error type maps its variants onto a [`StatusCode`];
//! the codes cross the RPC boundary as integers and the API layers turn them into their
//! protocol's own errors (SQLSTATE, CQL error code, RESP `-ERR`).

/// A status code that crosses process boundaries. The numbers are part of the RPC wire
/// format: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum StatusCode {
    Ok = 0,
    /// Something unexpected; see the message.
    Internal = 1,
    /// The request is malformed or names something invalid.
    InvalidArgument = 2,
    /// The named object does not exist.
    NotFound = 3,
    /// The object already exists.
    AlreadyExists = 4,
    /// This replica is not the leader; the message may carry the leader's address.
    NotLeader = 5,
    /// A transient condition (election in progress, server starting, ...): retry.
    ServiceUnavailable = 6,
    /// The operation did not finish before its deadline.
    TimedOut = 7,
    /// The storage engine failed (I/O error, corruption).
    StorageError = 8,
    /// Not enough live servers to satisfy placement.
    NotEnoughServers = 9,
    /// The server is shutting down.
    ShuttingDown = 10,
    /// A transaction lost a conflict (or was aborted after its timeout): nothing of it was
    /// written; run it again. SQLSTATE 40001 in BSQL.
    TxnConflict = 11,
    /// A key longer than the store can hold. SQLSTATE 54000 in BSQL.
    TooLarge = 12,
}

impl StatusCode {
    /// The code for a wire integer; unknown numbers map to `Internal`.
    pub fn from_i32(v: i32) -> StatusCode {
        use StatusCode::*;
        match v {
            0 => Ok,
            2 => InvalidArgument,
            3 => NotFound,
            4 => AlreadyExists,
            5 => NotLeader,
            6 => ServiceUnavailable,
            7 => TimedOut,
            8 => StorageError,
            9 => NotEnoughServers,
            10 => ShuttingDown,
            11 => TxnConflict,
            12 => TooLarge,
            _ => Internal,
        }
    }

    /// Whether a client may retry the same request (possibly elsewhere).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            StatusCode::NotLeader | StatusCode::ServiceUnavailable | StatusCode::TimedOut
        )
    }
}
