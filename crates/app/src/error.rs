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
}
