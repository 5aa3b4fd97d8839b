//! `voxguard check` (in progress).
use crate::Exit;
/// `check --help`.
pub const CHECK_AFTER_HELP: &str = "";
/// `voxguard check …`
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}
/// `voxguard check`.
pub fn run(_args: &CheckArgs) -> Exit {
    Exit::Internal
}
