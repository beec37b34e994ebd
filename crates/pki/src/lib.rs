//! vigil-pki (work in progress)
