//! What kind of failure a use case reports, independent of the front end: the CLI words it,
//! the HTTP API turns it into a status code.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// What the request names does not exist (a camera, recorded video in a range).
    NotFound,
    /// The request itself is wrong (a bad range, an output the use case cannot write).
    InvalidInput,
    /// The request collides with the current state (an existing file, a codec change).
    Conflict,
    /// Who is asking is not known.
    Unauthorized,
    /// Who is asking may not do this.
    Forbidden,
    /// The server cannot do it now (a signing key that does not load).
    Unavailable,
    /// Anything else: a fault of the server, not of the request.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A use case's error as front ends see it: a kind (which decides the HTTP status or the
/// CLI's advice), a stable machine code (the API's `code`, documented in docs/api.md) and a
/// message (its `Display`) saying what is wrong and what to do.
pub trait Classified: std::error::Error {
    fn kind(&self) -> ErrorKind;
    fn code(&self) -> &'static str;

    /// The management-database failure this error wraps (an audit record or a user lookup
    /// that failed), if any; [`classify`] reads it.
    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        None
    }
}

/// The stable code of every failure caused by an unreachable management database.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

/// A use case's kind and code as front ends report them. A management database that cannot be
/// reached (PostgreSQL down or restarting, docs/database.md) makes any use case that needed it
/// `Unavailable` with [`DATABASE_UNAVAILABLE`] (HTTP 503: try again), not a fault of the server,
/// whatever the use case would otherwise say about a failed audit record.
pub fn classify(e: &(impl Classified + ?Sized)) -> (ErrorKind, &'static str) {
    match e.database_error() {
        Some(db) if db.is_unavailable() => (ErrorKind::Unavailable, DATABASE_UNAVAILABLE),
        _ => (e.kind(), e.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cameras::CameraError;
    use vigil_access::AccessError;
    use vigil_access::vigil_db::DbError;

    #[test]
    fn an_unreachable_database_is_unavailable_whatever_the_use_case() {
        let down = CameraError::Audit(AccessError::Db(DbError::Unavailable(
            "connection refused".into(),
        )));
        assert_eq!(
            classify(&down),
            (ErrorKind::Unavailable, DATABASE_UNAVAILABLE)
        );
        // Any other database failure stays a fault of the server, with the use case's code.
        let broken = CameraError::Audit(AccessError::Corrupt("bad row".into()));
        assert_eq!(classify(&broken), (ErrorKind::Internal, "internal"));
        assert_eq!(
            broken.database_error().map(|e| e.is_unavailable()),
            Some(false)
        );
    }
}
