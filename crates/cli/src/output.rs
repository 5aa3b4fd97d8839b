//! Text output helpers of the `users` and `records` commands: aligned tables, UTC times,
//! terminal-safe text, and export files that only their owner can read.
//!
//! This module owns how values look on a terminal (unix seconds as RFC 3339 UTC, control
//! characters of stored values neutralised so that a crafted call id cannot drive the
//! terminal), how `--from`/`--to` times are parsed, and creating an export file with mode 0600
//! without ever writing over an existing file. It must not decide what is printed (the
//! commands do) and must not open the data directory.

use std::io::Write as _;
use std::path::Path;

use voxguard_guard::utc::{days_from_civil, days_in_month, DAY_SECS};

/// `text` safe to print on a terminal: every control character (C0, C1, DEL) and every
/// bidirectional or invisible formatting character replaced by `?`, so that text from a
/// stored value or a remote agent can neither drive the terminal nor reorder what is shown.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            let format = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
            if c.is_control() || format {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// A table with a header row, columns separated by two spaces, every cell [`clean`]ed; the
/// last column is not padded. Ends with a newline.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(
            rows.iter()
                .map(|row| row.iter().map(|c| clean(c)).collect()),
        )
        .collect();
    let mut widths = vec![0usize; header.len()];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let last = row.len().saturating_sub(1);
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// `secs` (unix seconds) as RFC 3339 UTC: `2024-03-12T09:30:00Z`.
pub fn utc(secs: u64) -> String {
    voxguard_guard::utc::rfc3339(secs)
}

/// Which end of a day a date-only time stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayEnd {
    Start,
    End,
}

/// A `--from` time: unix seconds, `YYYY-MM-DD` (00:00:00 UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_from(text: &str) -> Result<u64, String> {
    parse_time(text, DayEnd::Start)
}

/// A `--to` time (inclusive): unix seconds, `YYYY-MM-DD` (the whole day: 23:59:59 UTC) or
/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_to(text: &str) -> Result<u64, String> {
    parse_time(text, DayEnd::End)
}

fn parse_time(text: &str, end: DayEnd) -> Result<u64, String> {
    let bad = || {
        format!(
            "{:?} is not a time: give unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)",
            clean(text)
        )
    };
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().map_err(|_| bad());
    }
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let number = |part: &str, len: usize| -> Result<u32, String> {
        if part.len() == len && part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse::<u32>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (year, month, day) = (number(y, 4)?, number(m, 2)?, number(d, 2)?);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad());
    }
    let day_secs = match time {
        None => match end {
            DayEnd::Start => 0,
            DayEnd::End => DAY_SECS - 1,
        },
        Some(time) => {
            let time = time.strip_suffix(['Z', 'z']).ok_or_else(bad)?;
            let mut parts = time.split(':');
            let (Some(h), Some(mi), Some(s), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let (hour, minute, second) = (number(h, 2)?, number(mi, 2)?, number(s, 2)?);
            if hour > 23 || minute > 59 || second > 59 {
                return Err(bad());
            }
            u64::from(hour * 3600 + minute * 60 + second)
        }
    };
    let days = u64::try_from(days_from_civil(i64::from(year), month, day)).map_err(|_| bad())?;
    Ok(days * DAY_SECS + day_secs)
}

/// An export file created for writing: new (never an existing file), readable by its owner
/// only (mode 0600 on unix). Removed again unless [`finish`](ExportFile::finish) succeeds.
pub struct ExportFile {
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
}

impl std::fmt::Debug for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why an export file could not be created (the message never includes the path: the caller
/// knows it).
#[derive(Debug, thiserror::Error)]
pub enum ExportFileError {
    /// A file (or anything else) is already there.
    #[error("the output file already exists; exports are never written over a file: remove it or choose another name")]
    Exists,
    /// The directory is missing or not writable.
    #[error("the output file cannot be created: {0}")]
    Create(std::io::Error),
    /// Writing or syncing failed (the file was removed).
    #[error("the output file could not be written (it was removed): {0}")]
    Write(std::io::Error),
}

impl ExportFile {
    /// Create `path` (it must not exist) with mode 0600.
    pub fn create(path: &Path) -> Result<Self, ExportFileError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(file) => Ok(Self {
                file: Some(file),
                path: path.to_path_buf(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(ExportFileError::Exists)
            }
            Err(error) => Err(ExportFileError::Create(error)),
        }
    }

    /// Write `bytes`, flush them to disk and keep the file.
    pub fn finish(mut self, bytes: &[u8]) -> Result<(), ExportFileError> {
        let Some(mut file) = self.file.take() else {
            return Err(ExportFileError::Write(std::io::Error::other(
                "the file was already finished",
            )));
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        match written {
            Ok(()) => {
                // Kept: forget the path so that drop does not remove it.
                self.path = std::path::PathBuf::new();
                Ok(())
            }
            Err(error) => Err(ExportFileError::Write(error)),
        }
    }
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        // Not finished: no half-written or empty export is left behind.
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_round_trips_with_parsing() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_710_235_800), "2024-03-12T09:30:00Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
        for secs in [0, 59, 86_399, 951_782_400, 1_710_235_800, 4_102_444_799] {
            assert_eq!(parse_from(&utc(secs)), Ok(secs));
        }
    }

    #[test]
    fn times_parse_as_seconds_dates_or_rfc3339() {
        assert_eq!(parse_from("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_from("2024-03-12"), Ok(1_710_201_600));
        assert_eq!(parse_to("2024-03-12"), Ok(1_710_201_600 + 86_399));
        assert_eq!(parse_to("2024-03-12T09:30:00Z"), Ok(1_710_235_800));
        assert_eq!(parse_from("2000-02-29"), Ok(951_782_400));
        for bad in [
            "",
            "-5",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "1969-12-31",
            "2024-3-12",
            "2024-03-12T09:30:00",
            "2024-03-12T24:00:00Z",
            "yesterday",
            "2024-03-12-01",
        ] {
            let error = parse_from(bad).unwrap_err();
            assert!(error.contains("YYYY-MM-DD"), "{bad}: {error}");
        }
        // The rejected text is echoed without control characters.
        assert!(!parse_from("\u{1b}[2J").unwrap_err().contains('\u{1b}'));
    }

    #[test]
    fn tables_align_and_neutralise_control_characters() {
        let text = table(
            &["ID", "KIND", "SIZE"],
            &[
                vec!["rec_a".into(), "summary".into(), "12".into()],
                vec!["rec_bbbbbb".into(), "x\u{1b}[31m".into(), "3".into()],
            ],
        );
        assert_eq!(
            text,
            "ID          KIND     SIZE\nrec_a       summary  12\nrec_bbbbbb  x?[31m   3\n"
        );
    }

    #[test]
    fn export_files_are_private_new_and_removed_unless_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let file = ExportFile::create(&path).unwrap();
        assert!(matches!(
            ExportFile::create(&path),
            Err(ExportFileError::Exists)
        ));
        file.finish(b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // An existing file is refused and left alone.
        assert!(matches!(
            ExportFile::create(&path),
            Err(ExportFileError::Exists)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");

        // Dropped before finishing: nothing is left.
        let other = dir.path().join("abandoned.json");
        drop(ExportFile::create(&other).unwrap());
        assert!(!other.exists());
        assert!(matches!(
            ExportFile::create(&dir.path().join("no/such/dir.json")),
            Err(ExportFileError::Create(_))
        ));
    }
}
