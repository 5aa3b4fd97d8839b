//! The reference bank agent as a real child process: built once per test run, started on an
//! ephemeral port with an environment of the test's choosing, stopped with a signal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen soon.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// The `bank_agent` example binary, built once per test run (see [`example_binary`]).
pub fn bank_agent_binary() -> PathBuf {
    example_binary("bank_agent")
}

/// The example binary `name` (`bank_agent`, `clinic_agent`, `shop_agent`), built once per test
/// run in the test binary's own profile (`cargo test --test …` does not build examples by
/// itself, and a stale binary would test old code).
pub fn example_binary(name: &str) -> PathBuf {
    built_binary("--example", name)
}

/// The `voxguard` command-line binary (crate `voxguard-cli`), built once per test run in the
/// test binary's own profile, like [`example_binary`].
pub fn voxguard_binary() -> PathBuf {
    built_binary("--bin", "voxguard")
}

/// The binary `name` of kind `kind` (`--example` of this package, or `--bin` of the
/// workspace), built once per test run.
fn built_binary(kind: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path)) = built.iter().find(|(built, _)| built == name) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("current exe");
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let binary = if kind == "--example" {
        profile_dir.join("examples")
    } else {
        profile_dir.to_path_buf()
    }
    .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "--quiet",
        kind,
        name,
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
    ]);
    if kind == "--bin" {
        build.args(["-p", "voxguard-cli"]);
    }
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build {kind} {name} failed");
    assert!(binary.exists(), "no {name} binary at {}", binary.display());
    built.push((name.to_string(), binary.clone()));
    binary
}

/// A `bank_agent` command with a clean environment of our own settings, then `vars`.
pub fn bank_agent_command(data_dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = example_command("bank_agent", data_dir);
    command.envs(vars.iter().copied());
    command
}

/// The example `name` as a command on `data_dir`: no `VOXGUARD_*`, `SWML_*` or `BANK_*`
/// variable of the test's own environment, port 0 on 127.0.0.1, `RUST_LOG=warn`, stdout and
/// stderr piped. Callers add their variables after these, so theirs win.
pub fn example_command(name: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(example_binary(name));
    for (name, _) in std::env::vars() {
        if ["VOXGUARD_", "SWML_", "BANK_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }
    command
        .current_dir(data_dir)
        .env("VOXGUARD_PORT", "0")
        .env("VOXGUARD_HOST", "127.0.0.1")
        .env("VOXGUARD_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Kills the child if a test fails half-way.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Wait for the child to exit; `None` if it is still running after [`EVENTUALLY`].
pub async fn wait_for_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Drain a pipe on a thread so the child never blocks on a full pipe.
pub fn drain<R: std::io::Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// A reference agent child process that announced its URL on its first stdout line
/// (`"<name> listening on <url>"`), with threads collecting the rest of stdout and stderr.
pub struct Announced {
    /// The child process (killed on drop).
    pub child: ChildGuard,
    /// The announced base URL, as printed (`http://127.0.0.1:PORT/`).
    pub base: String,
    /// The rest of stdout, first line included, once the process has exited.
    pub stdout: std::thread::JoinHandle<String>,
    /// Everything on stderr, once the process has exited.
    pub stderr: std::thread::JoinHandle<String>,
}

/// Spawn `command` (stdout and stderr piped) and wait up to two minutes for its
/// `"<who> listening on <url>"` line; panics with the child's stderr on anything else.
pub async fn spawn_announced(mut command: Command, who: &str) -> Announced {
    let mut child = ChildGuard(
        command
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {who}: {err}")),
    );
    let stderr = drain(child.0.stderr.take().expect("stderr"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (line_tx, line_rx) = tokio::sync::oneshot::channel();
    let stdout = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        let _ = line_tx.send(first.trim_end().to_string());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        format!("{first}{rest}")
    });
    let line = tokio::time::timeout(Duration::from_secs(120), line_rx)
        .await
        .unwrap_or_else(|_| panic!("{who} did not announce itself"))
        .unwrap_or_default();
    let Some(base) = line.strip_prefix(&format!("{who} listening on ")) else {
        let _ = child.0.kill();
        let _ = child.0.wait();
        panic!(
            "unexpected first line {line:?} from {who}; stderr: {}",
            stderr.join().unwrap_or_default()
        );
    };
    Announced {
        child,
        base: base.to_string(),
        stdout,
        stderr,
    }
}

/// Basic-auth user the bank agent child is started with.
pub const BANK_USER: &str = "bank-operator";
/// Basic-auth password the bank agent child is started with.
pub const BANK_PASSWORD: &str = "s3cure-bank-agent-password-0123456789";

/// A running `bank_agent` child process.
pub struct BankAgent {
    /// The child process.
    pub child: ChildGuard,
    /// The announced base URL.
    pub base: reqwest::Url,
    stderr: std::thread::JoinHandle<String>,
    stdout: std::thread::JoinHandle<String>,
    _data_dir: Option<tempfile::TempDir>,
}

/// Start the bank agent with `vars` and wait for its "listening" line.
pub async fn start_bank_agent(vars: &[(&str, &str)]) -> BankAgent {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut agent = start_bank_agent_in(data_dir.path(), vars).await;
    agent._data_dir = Some(data_dir);
    agent
}

/// Start the bank agent on the data directory `dir` (kept by the caller, e.g. to restart on
/// the same state) with `vars`.
pub async fn start_bank_agent_in(dir: &Path, vars: &[(&str, &str)]) -> BankAgent {
    let Announced {
        child,
        base,
        stdout,
        stderr,
    } = spawn_announced(bank_agent_command(dir, vars), "bank agent").await;
    let base = reqwest::Url::parse(&base).expect("announced URL");
    assert_eq!(base.scheme(), "http");
    assert_eq!(base.host_str(), Some("127.0.0.1"));
    assert!(base.port().is_some_and(|port| port != 0), "{base}");
    BankAgent {
        child,
        base,
        stderr,
        stdout,
        _data_dir: None,
    }
}

impl BankAgent {
    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        self.base.join(path).expect("join").to_string()
    }

    /// Send SIGTERM and wait for the exit; returns the status and everything on stderr.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid}");
        let status = wait_for_exit(&mut self.child.0)
            .await
            .expect("the bank agent exits after SIGTERM");
        let stderr = self.stderr.join().unwrap_or_default();
        let _ = self.stdout.join();
        (status, stderr)
    }
}

impl BankAgent {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Kill the process with SIGKILL (no shutdown, no flush) and wait for it.
    pub async fn kill9(mut self) -> ExitStatus {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -KILL {pid}");
        wait_for_exit(&mut self.child.0)
            .await
            .expect("the bank agent dies on SIGKILL")
    }
}
