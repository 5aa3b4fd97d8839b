//! End-to-end tests of the agent-facing CLI commands (`swml`, `tools`, `exec`, `simulate`,
//! `probe`, `check`, `keys`, `completions`): the compiled `voxguard` binary run against the
//! reference agents as real child processes on port 0, and against deliberately weak agents
//! served by the tests. The kit here starts the agents and runs the binary; the tests assert
//! stdout, stderr, JSON and exit codes.

mod check;
mod hostile;
mod inspect;
mod probe;
mod simulate;
mod weak;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::bank_process::{self, ChildGuard};
pub use crate::util::bank_process::{BANK_PASSWORD, BANK_USER};
pub use crate::util::{CLINIC_AUDIT_KEY, CLINIC_PASSWORD, CLINIC_USER, RECORDS_KEY};

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (panics with the whole run when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim_end())
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }
}

/// Run `voxguard args` with no `VOXGUARD_*`/`SWML_*` variables but `vars`, `NO_COLOR=1`, in
/// `cwd` (the system temp dir when `None`). Runs on a blocking thread, so async tests may
/// call it with their servers running.
pub async fn voxguard(args: &[&str], vars: &[(&str, &str)], cwd: Option<&Path>) -> Run {
    let mut command = Command::new(bank_process::voxguard_binary());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("VOXGUARD_") || name.starts_with("SWML_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(vars.iter().copied())
        .env("NO_COLOR", "1")
        .current_dir(
            cwd.map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir),
        )
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run voxguard");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A reference agent (`bank_agent`, `clinic_agent`, `shop_agent`) as a child process on
/// port 0, with its own data directory.
pub struct RefAgent {
    /// The child process (killed on drop).
    _child: ChildGuard,
    /// The announced base URL (`http://127.0.0.1:PORT/`).
    pub base: String,
    /// Its Basic user.
    pub user: &'static str,
    /// Its Basic password.
    pub password: &'static str,
    _dir: tempfile::TempDir,
}

impl RefAgent {
    /// Start the example `name` with `vars` on top of its test credentials and keys.
    pub async fn start(name: &str, vars: &[(&str, &str)]) -> Self {
        let (user, password) = match name {
            "clinic_agent" => (CLINIC_USER, CLINIC_PASSWORD),
            _ => (BANK_USER, BANK_PASSWORD),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = bank_process::example_command(name, dir.path());
        command
            .env("SWML_BASIC_AUTH_USER", user)
            .env("SWML_BASIC_AUTH_PASSWORD", password)
            .env("VOXGUARD_RECORDS_KEY", RECORDS_KEY)
            .env("VOXGUARD_AUDIT_KEY", CLINIC_AUDIT_KEY)
            .envs(vars.iter().copied());
        let agent = bank_process::spawn_announced(command, &name.replace('_', " ")).await;
        Self {
            _child: agent.child,
            base: agent.base,
            user,
            password,
            _dir: dir,
        }
    }

    /// The SWML URL with the credentials in it.
    pub fn url_with_credentials(&self) -> String {
        self.base.replacen(
            "http://",
            &format!("http://{}:{}@", self.user, self.password),
            1,
        )
    }

    /// The credentials as the environment of a CLI run.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("SWML_BASIC_AUTH_USER", self.user),
            ("SWML_BASIC_AUTH_PASSWORD", self.password),
        ]
    }
}
