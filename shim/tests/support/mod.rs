//! Harnesses: a private containerd driven with `ctr`, one with CRI, and images to push.

pub(crate) mod containerd;
pub(crate) mod cri;
pub(crate) mod images;
