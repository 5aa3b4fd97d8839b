//! `voxguard simulate` (in progress).
use crate::Exit;
/// `simulate --help`.
pub const SIMULATE_AFTER_HELP: &str = "";
/// `voxguard simulate …`
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}
/// `voxguard simulate`.
pub fn run(_args: &SimulateArgs) -> Exit {
    Exit::Internal
}
