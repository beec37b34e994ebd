//! vigil-samplecam (work in progress)
