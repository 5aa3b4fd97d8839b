//! `voxguard probe` (in progress).
use crate::Exit;
/// `probe --help`.
pub const PROBE_AFTER_HELP: &str = "";
/// `voxguard probe …`
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {}
/// `voxguard probe`.
pub fn run(_args: &ProbeArgs) -> Exit {
    Exit::Internal
}
