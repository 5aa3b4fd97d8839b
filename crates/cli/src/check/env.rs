//! The environment `voxguard check` evaluates: the variables of a dotenv file (`--env-file`),
//! or else the process environment, and which of them hold secrets.
//!
//! It owns reading the file (at most [`MAX_ENV_FILE_BYTES`], then parsed from memory with
//! `dotenvy`, as deployment tools read such files: `KEY=VALUE`
//! lines, `#` comments, single or double quotes, `export` prefixes and `${VAR}` expansion) and
//! the list of secret variables, whose values are masked in every line `check` prints and
//! searched for on process command lines. It must never print a value: its errors name the
//! file and the problem, never a line's text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::agent::mask::Secrets;

/// Variables whose values are secrets (never printed; looked for on command lines).
pub const SECRET_VARS: [&str; 12] = [
    "SWML_BASIC_AUTH_PASSWORD",
    "VOXGUARD_ADMIN_PASSWORD",
    "VOXGUARD_METRICS_PASSWORD",
    "VOXGUARD_TOKEN_KEY",
    "VOXGUARD_TOKEN_KEYS_PREVIOUS",
    "VOXGUARD_AUDIT_KEY",
    "VOXGUARD_RECORDS_KEY",
    "VOXGUARD_RECORDS_KEYS_PREVIOUS",
    "SIGNALWIRE_SIGNING_KEY",
    "VOXGUARD_STRIPE_SECRET_KEY",
    "VOXGUARD_DATABASE_URL",
    "VOXGUARD_REDIS_URL",
];

/// The largest env file read (1 MiB); a larger one is refused.
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// Where the variables came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The process environment of `voxguard check`.
    Process,
    /// A dotenv file, alone.
    File(PathBuf),
}

/// The evaluated variables (values zeroized when dropped).
pub struct Env {
    vars: BTreeMap<String, Zeroizing<String>>,
    /// Where they came from.
    pub source: Source,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("variables", &self.vars.len())
            .field("source", &self.source)
            .finish()
    }
}

impl Env {
    /// The process environment (variables whose name or value is not UTF-8 are skipped).
    pub fn process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((
                        name.into_string().ok()?,
                        Zeroizing::new(value.into_string().ok()?),
                    ))
                })
                .collect(),
            source: Source::Process,
        }
    }

    /// The variables of the dotenv file `path`, and nothing else.
    ///
    /// # Errors
    ///
    /// A sentence naming the file and what is wrong (never a line's text: it may hold a
    /// secret).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        use std::io::Read as _;
        let shown = path.display();
        let cannot = |io: std::io::Error| {
            format!(
                "cannot read the env file {shown}: {io}. Check the path and that this user may read it."
            )
        };
        // At most MAX_ENV_FILE_BYTES + 1 bytes are read: a device or a pipe (`/dev/zero`)
        // must not exhaust memory.
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .map_err(cannot)?
            .take(MAX_ENV_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_ENV_FILE_BYTES {
            return Err(format!(
                "the env file {shown} is larger than {} KiB: it is not a dotenv file (is it a device or a pipe?)",
                MAX_ENV_FILE_BYTES / 1024
            ));
        }
        let iter = dotenvy::from_read_iter(bytes.as_slice());
        let mut vars = BTreeMap::new();
        for (entry, item) in iter.enumerate() {
            match item {
                Ok((name, value)) => {
                    vars.insert(name, Zeroizing::new(value));
                }
                Err(err) => {
                    return Err(format!(
                        "the env file {shown} cannot be read after its {} variable(s): {}",
                        entry,
                        describe(&err)
                    ))
                }
            }
        }
        Ok(Self {
            vars,
            source: Source::File(path.to_path_buf()),
        })
    }

    /// A set of variables, for tests.
    #[cfg(test)]
    pub fn of(vars: &[(&str, &str)]) -> Self {
        Self {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
                .collect(),
            source: Source::Process,
        }
    }

    /// The value of `name` as given (untrimmed; possibly empty).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|value| value.as_str())
    }

    /// The value of `name`, trimmed, when set and not empty (as the runtime reads it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// A lookup for the runtime's own readers (`ServerConfig::from_lookup`, …).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.raw(name).map(str::to_string)
    }

    /// Each secret value with the variable holding it: list variables give each of their
    /// items, URL variables their password too.
    pub fn secrets(&self) -> Vec<(&'static str, Zeroizing<String>)> {
        let mut found = Vec::new();
        for name in SECRET_VARS {
            let Some(value) = self.get(name) else {
                continue;
            };
            if name.ends_with("_PREVIOUS") {
                let separator = |c: char| c == ',' || c.is_whitespace();
                for part in value.split(separator).filter(|p| !p.is_empty()) {
                    found.push((name, Zeroizing::new(part.to_string())));
                }
                continue;
            }
            found.push((name, Zeroizing::new(value.to_string())));
            if name.ends_with("_URL") {
                if let Some(password) = url::Url::parse(value)
                    .ok()
                    .and_then(|url| url.password().map(str::to_string))
                {
                    let decoded = percent_encoding::percent_decode_str(&password)
                        .decode_utf8_lossy()
                        .into_owned();
                    found.push((name, Zeroizing::new(decoded)));
                    found.push((name, Zeroizing::new(password)));
                }
            }
        }
        found
    }

    /// Every secret value, to be masked in what `check` prints.
    pub fn mask(&self) -> Secrets {
        let mut secrets = Secrets::default();
        for (_, value) in self.secrets() {
            secrets.add(&value);
        }
        secrets
    }
}

/// What went wrong in a dotenv file, without the line's text.
fn describe(err: &dotenvy::Error) -> String {
    match err {
        dotenvy::Error::LineParse(_, position) => format!(
            "a line is not KEY=VALUE (error at character {position} of that line; its text is not shown, as it may hold a secret)"
        ),
        dotenvy::Error::Io(io) => io.to_string(),
        dotenvy::Error::EnvVar(var) => var.to_string(),
        _ => "it is not a dotenv file".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotenv_file_is_read_with_quotes_comments_and_export() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(
            &path,
            "# comment\nVOXGUARD_ENV=production\nexport SWML_BASIC_AUTH_USER='ops'\nVOXGUARD_TOKEN_KEY=\"a b#c\" # trailing\nEMPTY=\n",
        )
        .unwrap();
        let env = Env::from_file(&path).unwrap();
        assert_eq!(env.get("VOXGUARD_ENV"), Some("production"));
        assert_eq!(env.get("SWML_BASIC_AUTH_USER"), Some("ops"));
        assert_eq!(env.get("VOXGUARD_TOKEN_KEY"), Some("a b#c"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.raw("EMPTY"), Some(""));
    }

    #[test]
    fn a_bad_line_is_reported_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "GOOD=1\nthis is hunter2-secret not a var\n").unwrap();
        let err = Env::from_file(&path).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("KEY=VALUE"), "{err}");
        let missing = Env::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn an_endless_or_huge_file_is_refused_after_the_cap() {
        let err = Env::from_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("larger than 1024 KiB"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        let line = "A=1\n".repeat((MAX_ENV_FILE_BYTES as usize / 4) + 1);
        std::fs::write(&path, line).unwrap();
        assert!(Env::from_file(&path).unwrap_err().contains("larger than"));
        std::fs::write(&path, "A=1\n").unwrap();
        assert_eq!(Env::from_file(&path).unwrap().get("A"), Some("1"));
    }

    #[test]
    fn secrets_include_list_items_and_url_passwords() {
        let env = Env::of(&[
            ("VOXGUARD_TOKEN_KEYS_PREVIOUS", "k1-aaaaaaaa, k2-bbbbbbbb"),
            ("VOXGUARD_DATABASE_URL", "postgres://u:p%40ss-word@db/x"),
            ("VOXGUARD_ENV", "production"),
        ]);
        let values: Vec<String> = env.secrets().iter().map(|(_, v)| v.to_string()).collect();
        assert!(values.contains(&"k1-aaaaaaaa".to_string()));
        assert!(values.contains(&"k2-bbbbbbbb".to_string()));
        assert!(values.contains(&"p@ss-word".to_string()));
        assert!(!values.contains(&"production".to_string()));
    }
}
