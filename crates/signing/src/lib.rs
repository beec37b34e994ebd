//! vigil-signing (work in progress)
