//! Helpers shared by the end-to-end modules: the reference test kit, plus small tool builders
//! that several modules need.

pub use voxguard_reference::*;
