//! `CqlError`: an error as the CQL protocol reports it (an error code from the native
//! protocol spec, section 9, and a message). Every failure leaves BCQL as one of these.

/// Error codes of the CQL native protocol v4.
pub mod code {
    pub const SERVER_ERROR: i32 = 0x0000;
    pub const PROTOCOL_ERROR: i32 = 0x000A;
    pub const BAD_CREDENTIALS: i32 = 0x0100;
    pub const UNAVAILABLE: i32 = 0x1000;
    pub const OVERLOADED: i32 = 0x1001;
    pub const TRUNCATE_ERROR: i32 = 0x1003;
    pub const WRITE_TIMEOUT: i32 = 0x1100;
    pub const READ_TIMEOUT: i32 = 0x1200;
    pub const SYNTAX_ERROR: i32 = 0x2000;
    pub const UNAUTHORIZED: i32 = 0x2100;
    pub const INVALID: i32 = 0x2200;
    pub const CONFIG_ERROR: i32 = 0x2300;
    pub const ALREADY_EXISTS: i32 = 0x2400;
    pub const UNPREPARED: i32 = 0x2500;
}

/// A CQL error: code, message and the code-specific extra fields.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CqlError {
    pub code: i32,
    pub message: String,
    pub extra: Extra,
}

/// Code-specific fields that follow the message in an ERROR body.
#[derive(Debug, Clone, Default)]
pub enum Extra {
    #[default]
    None,
    /// ALREADY_EXISTS: keyspace and table ("" for a keyspace).
    AlreadyExists { keyspace: String, table: String },
    /// UNPREPARED: the unknown statement id.
    Unprepared(Vec<u8>),
}

pub type Result<T, E = CqlError> = std::result::Result<T, E>;

impl CqlError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CqlError {
            code,
            message: message.into(),
            extra: Extra::None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID, message)
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(code::SYNTAX_ERROR, message)
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(code::PROTOCOL_ERROR, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(code::SERVER_ERROR, message)
    }
    pub fn already_exists(keyspace: &str, table: &str) -> Self {
        let message = if table.is_empty() {
            format!("Cannot add existing keyspace \"{keyspace}\"")
        } else {
            format!("Cannot add already existing table \"{table}\" to keyspace \"{keyspace}\"")
        };
        CqlError {
            code: code::ALREADY_EXISTS,
            message,
            extra: Extra::AlreadyExists {
                keyspace: keyspace.to_owned(),
                table: table.to_owned(),
            },
        }
    }
    pub fn unprepared(id: &[u8]) -> Self {
        CqlError {
            code: code::UNPREPARED,
            message: "Prepared query with ID not found (either the query was not prepared on this host (maybe the host has been restarted?) or you have prepared too many queries and it has been evicted from the internal cache)".into(),
            extra: Extra::Unprepared(id.to_vec()),
        }
    }
}

impl From<client::ClientError> for CqlError {
    fn from(e: client::ClientError) -> Self {
        use common::StatusCode as S;
        match e.code() {
            S::ServiceUnavailable | S::NotLeader | S::NotEnoughServers => {
                CqlError::new(code::UNAVAILABLE, e.to_string())
            }
            S::TimedOut => CqlError::new(code::WRITE_TIMEOUT, e.to_string()),
            // A request the store refuses as such (a key too large for it, a read older than
            // the kept history): the client's to fix, not a server fault.
            S::InvalidArgument | S::TooLarge => CqlError::invalid(e.to_string()),
            _ => CqlError::server(e.to_string()),
        }
    }
}
