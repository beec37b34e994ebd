//! vigil-netpolicy (work in progress)
