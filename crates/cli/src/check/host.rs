//! The checklist items read from this machine: the data directory's permissions, the records
//! API's operators kept in it, and secrets on process command lines (`/proc/PID/cmdline`).
//!
//! It owns looking at files and processes: nothing is created, chmod-ed or written. The data
//! directory is examined before anything opens a file in it; `records.db` is opened read-only
//! (`SqliteRecordStore::read_operators`: no schema statement, no permission change) only when
//! it exists and only to list the operators; a command line is only searched, never printed. It must never print a secret: a process is reported by
//! its pid, its name and the *name* of the variable whose value appears.

use std::path::{Path, PathBuf};

use voxguard::store::{SqliteRecordStore, RECORDS_DB_FILE_NAME};

use super::env::Env;
use super::items::{mode, records_on};
use super::Item;

/// The data directory when `VOXGUARD_DATA_DIR` does not name one (relative to the current
/// directory).
pub const DEFAULT_DATA_DIR: &str = crate::datadir::DEFAULT_DATA_DIR;

/// Shortest secret value searched for on command lines: shorter ones would match by chance.
pub const MIN_SEARCHED_LEN: usize = 8;

/// The data directory `env` names.
pub fn data_dir_of(env: &Env) -> PathBuf {
    PathBuf::from(env.get("VOXGUARD_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR))
}

/// `data_dir`: the directory 0700, every file in it (a link's target, judged by its own mode)
/// unreadable by group and others, and no link to a file outside the directory.
pub fn data_dir(env: &Env) -> Item {
    let dir = data_dir_of(env);
    let shown = dir.display();
    let meta = match std::fs::metadata(&dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return if env.get("VOXGUARD_DATABASE_URL").is_some() {
                Item::pass(
                    "data_dir",
                    format!("state is on PostgreSQL; {shown} does not exist"),
                )
            } else {
                Item::warn(
                    "data_dir",
                    format!("{shown} does not exist yet (the runtime creates it 0700 at first start), so its permissions could not be checked"),
                    "run check again after the agent's first start, or set VOXGUARD_DATA_DIR to the directory it uses",
                )
            };
        }
        Err(err) => {
            return Item::fail(
                "data_dir",
                format!("{shown} cannot be examined: {err}"),
                "run check as the agent's user, or fix the path in VOXGUARD_DATA_DIR",
            )
        }
    };
    if !meta.is_dir() {
        return Item::fail(
            "data_dir",
            format!("{shown} is not a directory"),
            "point VOXGUARD_DATA_DIR at the agent's data directory",
        );
    }
    let dir_mode = mode(&meta);
    if dir_mode & 0o077 != 0 {
        return Item::fail(
            "data_dir",
            format!("{shown} has mode {dir_mode:04o}: other users can reach the databases"),
            format!("chmod 700 {shown}"),
        );
    }
    let mut open_files = Vec::new();
    let mut dev_key = false;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) => {
            return Item::fail(
                "data_dir",
                format!("{shown} cannot be listed: {err}"),
                "run check as the agent's user",
            )
        }
    };
    let real_dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let mut outside = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == voxguard::records::DEV_KEY_FILE {
            dev_key = true;
        }
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        if is_link {
            // What the runtime opens is the target: judge its mode, and where it lives.
            match std::fs::canonicalize(&path) {
                Ok(target) if !target.starts_with(&real_dir) => {
                    outside.push(format!("{name} -> {}", target.display()));
                }
                Ok(_) => {}
                Err(_) => {
                    outside.push(format!("{name} (a link whose target cannot be reached)"));
                    continue;
                }
            }
        }
        // `fs::metadata` follows links (DirEntry::metadata does not).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() && mode(&meta) & 0o077 != 0 {
            open_files.push(format!("{name} ({:04o})", mode(&meta)));
        }
    }
    if !open_files.is_empty() {
        open_files.sort();
        return Item::fail(
            "data_dir",
            format!(
                "in {shown}, readable by group or others: {}",
                open_files.join(", ")
            ),
            format!("chmod 600 the files listed in {shown}"),
        );
    }
    if !outside.is_empty() {
        outside.sort();
        return Item::fail(
            "data_dir",
            format!(
                "in {shown}, links to files outside it (whose directory's permissions are not checked): {}",
                outside.join(", ")
            ),
            format!("replace the links in {shown} with the files themselves, mode 600"),
        );
    }
    if dev_key {
        return Item::warn(
            "data_dir",
            format!("{shown} is 0700, but holds the development records key {}", voxguard::records::DEV_KEY_FILE),
            "set VOXGUARD_RECORDS_KEY and delete the development key once no record depends on it (`voxguard records rotate-key`)",
        );
    }
    Item::pass(
        "data_dir",
        format!("{shown} is {dir_mode:04o} and no file in it is readable by group or others"),
    )
}

/// `credentials.operators`: with records on, the records API has an admin operator.
/// Operators' secrets are generated by voxguard and stored only as hashes, so their strength
/// and distinctness need no check.
pub async fn operators(env: &Env) -> Item {
    const ID: &str = "credentials.operators";
    if !records_on(env) {
        return Item::pass(ID, "records are off: no records API, no operators");
    }
    if env.get("VOXGUARD_DATABASE_URL").is_some() {
        return Item::warn(
            ID,
            "operators are kept on PostgreSQL, which check does not open",
            "list them with `voxguard users list` (with VOXGUARD_DATABASE_URL and VOXGUARD_RECORDS_KEY)",
        );
    }
    let path = data_dir_of(env).join(RECORDS_DB_FILE_NAME);
    const ADD: &str = "add the first with `voxguard users add NAME --role admin` (its secret is generated and printed once)";
    if !path.is_file() {
        return Item::warn(
            ID,
            format!(
                "no {RECORDS_DB_FILE_NAME} in the data directory: the records API has no operator"
            ),
            ADD,
        );
    }
    // Read-only: no schema statement, no chmod, no new file (check changes nothing).
    match SqliteRecordStore::read_operators(&path).await {
        Ok(all) => {
            let admins = all.iter().filter(|op| op.role == "admin").count();
            if admins == 0 {
                Item::warn(
                    ID,
                    format!("{} operator(s), none with the admin role", all.len()),
                    ADD,
                )
            } else {
                Item::pass(
                    ID,
                    format!("{} operator(s), {admins} admin(s); their passwords and tokens are generated by voxguard and kept only as hashes", all.len()),
                )
            }
        }
        Err(err) => Item::fail(
            ID,
            format!("the operators cannot be read: {err}"),
            "run check as the agent's user",
        ),
    }
}

/// Why `--pid` cannot be used (exit 2).
#[derive(Debug)]
pub struct NoSuchProcess(pub String);

/// `cmdline`: no secret value of `env` on the command line of `pid`, or else of any process
/// of any user (but this one). A command line that cannot be read, or no process scanned at
/// all, is a warning: the agent may be the process that was not searched.
pub fn cmdline(env: &Env, pid: Option<u32>) -> Result<Item, NoSuchProcess> {
    const ID: &str = "cmdline";
    let secrets: Vec<(&'static str, zeroize::Zeroizing<String>)> = env
        .secrets()
        .into_iter()
        .filter(|(_, value)| value.chars().count() >= MIN_SEARCHED_LEN)
        .collect();
    let pids: Vec<u32> = match pid {
        Some(pid) => {
            if !Path::new(&format!("/proc/{pid}")).is_dir() {
                return Err(NoSuchProcess(format!(
                    "there is no process {pid} (is it running, and is /proc mounted?)"
                )));
            }
            vec![pid]
        }
        None => match every_process() {
            Some(pids) => pids,
            None => {
                return Ok(Item::warn(
                    ID,
                    "/proc cannot be read here, so command lines were not searched",
                    "run check on the agent's host (Linux), or give --pid",
                ))
            }
        },
    };
    if secrets.is_empty() {
        return Ok(Item::pass(
            ID,
            "no secret value (of 8 characters or more) is set, so none can be on a command line",
        ));
    }
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut scanned = 0usize;
    for pid in &pids {
        let line = match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(line) => line,
            Err(_) if pid_gone(*pid) => continue,
            Err(_) => {
                unreadable.push(*pid);
                continue;
            }
        };
        scanned += 1;
        let mut names: Vec<&str> = secrets
            .iter()
            .filter(|(_, value)| contains(&line, value.as_bytes()))
            .map(|(name, _)| *name)
            .collect();
        names.dedup();
        if !names.is_empty() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push(format!(
                "pid {pid} ({}): the value of {}",
                crate::output::clean(comm.trim()),
                names.join(", ")
            ));
        }
    }
    Ok(cmdline_verdict(pid, &found, scanned, &unreadable))
}

/// The `cmdline` item once the command lines were searched: `found` (a secret on one) fails;
/// an unreadable command line, or none searched at all, warns; else a pass.
fn cmdline_verdict(pid: Option<u32>, found: &[String], scanned: usize, unreadable: &[u32]) -> Item {
    const ID: &str = "cmdline";
    const FIX: &str = "pass secrets in the environment (systemd EnvironmentFile= with mode 0600, a Kubernetes secret), never as arguments: every user of the machine can read a command line";
    if !found.is_empty() {
        return Item::fail(
            ID,
            format!("secret on a command line: {}", found.join("; ")),
            FIX,
        );
    }
    let scope = match pid {
        Some(pid) => format!("process {pid}"),
        None => format!("{scanned} process(es)"),
    };
    if !unreadable.is_empty() {
        let mut shown: Vec<String> = unreadable.iter().take(10).map(u32::to_string).collect();
        if unreadable.len() > shown.len() {
            shown.push(format!("and {} more", unreadable.len() - shown.len()));
        }
        return Item::warn(
            ID,
            format!(
                "no secret value on the command line of {scope}, but {} command line(s) cannot be read (pid {})",
                unreadable.len(),
                shown.join(", ")
            ),
            "run check as root (or as the agent's user with --pid) so every command line is searched",
        );
    }
    if scanned == 0 {
        return Item::warn(
            ID,
            "no command line could be searched (no process is visible here)",
            "run check on the agent's host, as root, or give --pid",
        );
    }
    Item::pass(
        ID,
        format!("no secret value on the command line of {scope}"),
    )
}

/// The pids of every process this one can see, of any user, this one excepted (`None`: no
/// readable `/proc`).
fn every_process() -> Option<Vec<u32>> {
    let own = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            (pid != own).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    Some(pids)
}

/// Whether the process has ended meanwhile.
fn pid_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `haystack` holds `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permissive_data_dir_and_an_open_file_fail() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let env = Env::of(&[("VOXGUARD_DATA_DIR", dir.to_str().unwrap())]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let item = data_dir(&env);
        assert_eq!(item.status, super::super::Status::Fail, "{item:?}");
        assert!(item.detail.contains("0755"), "{item:?}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let db = dir.join("records.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let item = data_dir(&env);
        assert_eq!(item.status, super::super::Status::Fail, "{item:?}");
        assert!(item.detail.contains("records.db (0644)"), "{item:?}");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(data_dir(&env).status, super::super::Status::Pass);
    }

    #[test]
    fn links_are_judged_by_their_target_and_may_not_leave_the_dir() {
        use super::super::Status;
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let (dir, shared) = (parent.path().join("data"), parent.path().join("shared"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let env = Env::of(&[("VOXGUARD_DATA_DIR", dir.to_str().unwrap())]);
        let target = shared.join("records.db");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("records.db")).unwrap();
        let item = data_dir(&env);
        assert_eq!(item.status, Status::Fail, "{item:?}");
        assert!(item.detail.contains("records.db (0644)"), "{item:?}");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let item = data_dir(&env);
        assert_eq!(item.status, Status::Fail, "{item:?}");
        assert!(item.detail.contains("outside"), "{item:?}");
        // A link to a private file inside the directory is fine.
        std::fs::remove_file(dir.join("records.db")).unwrap();
        std::fs::write(dir.join("real.db"), b"x").unwrap();
        std::fs::set_permissions(dir.join("real.db"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink(dir.join("real.db"), dir.join("records.db")).unwrap();
        assert_eq!(data_dir(&env).status, Status::Pass, "{:?}", data_dir(&env));
    }

    #[test]
    fn an_unreadable_or_empty_scan_warns() {
        use super::super::Status;
        let found = vec!["pid 7 (sh): the value of VOXGUARD_TOKEN_KEY".to_string()];
        assert_eq!(cmdline_verdict(None, &found, 3, &[9]).status, Status::Fail);
        let item = cmdline_verdict(None, &[], 3, &[9, 10]);
        assert_eq!(item.status, Status::Warn, "{item:?}");
        assert!(item.detail.contains("2 command line(s)"), "{item:?}");
        assert_eq!(cmdline_verdict(Some(9), &[], 0, &[9]).status, Status::Warn);
        assert_eq!(cmdline_verdict(None, &[], 0, &[]).status, Status::Warn);
        assert_eq!(cmdline_verdict(None, &[], 3, &[]).status, Status::Pass);
    }

    #[test]
    fn every_users_processes_are_scanned() {
        use std::os::unix::fs::MetadataExt as _;
        let pids = every_process().unwrap();
        assert!(!pids.contains(&std::process::id()));
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        // Every visible process is listed, whoever runs it (pid 1 is usually root's).
        let visible = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .filter(|e| e.metadata().is_ok_and(|m| m.uid() != me))
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .collect::<Vec<_>>();
        for pid in visible {
            assert!(pids.contains(&pid) || pid_gone(pid), "{pid} missing");
        }
        assert!(pids.contains(&1));
    }

    #[test]
    fn substrings_are_found() {
        assert!(contains(b"sh\0-c\0sleep 30\0abcdefgh\0", b"abcdefgh"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(!contains(b"abc", b""));
    }
}
