//! The application layer: the use cases the CLI and the HTTP API call.
//!
//! Front ends parse their input, call one function here and present the result; what a use
//! case does (which bytes an export holds, how a bundle is signed and packaged, which error
//! kind a failure is) is decided once, here, on top of the domain crates.
//!
//! - [`export`]: MP4 export, evidence-bundle export and its tar packaging for download.
//! - [`error`]: the error kinds every use case's errors map into.

pub mod error;
pub mod export;

pub use error::ErrorKind;
