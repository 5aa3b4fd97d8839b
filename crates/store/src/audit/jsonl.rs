//! The JSON-lines audit backend, for log shippers.
//!
//! This module owns [`JsonlAuditLog`]: one canonical record per line in an append-only file,
//! signed checkpoints in a `<file>.checkpoints` sidecar, the single writer thread that writes
//! each group of queued events with one write (and at most one sync) per file and cuts a failed
//! write back, and the readers that list and verify a file. It must not be opened on one file
//! by two writers, and its errors must not show paths or event content through `Display`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};
use voxguard_guard::audit::{
    AuditEvent, AuditKey, AuditRecord, Checkpoint, Verifier, VerifyReport,
};

use super::{
    checkpoint_due, each_batch_blocking, writer_stopped, AuditSink, Batch, Command, Durability,
    Handle, Tail, QUEUE_CAPACITY,
};
use crate::StoreError;

/// The audit trail as a JSON-lines file, for log shippers: one canonical JSON
/// [`AuditRecord`] per line ([`AuditRecord::to_json_line`]), and signed checkpoints in a
/// sidecar file `<file>.checkpoints` (one [`Checkpoint`] per line).
///
/// One writer per file: do not open the same file from two sinks or processes at once. Bytes
/// after the last newline are an unacknowledged partial write (the process died mid-write); they
/// are cut off when the file is opened and ignored when it is read.
pub struct JsonlAuditLog {
    handle: Handle,
    path: PathBuf,
    stopped: oneshot::Receiver<()>,
    durability: Durability,
}

impl JsonlAuditLog {
    /// Open (or create, mode `0600`) the file at `path` and start its writer thread, which
    /// resumes the chain after the last line. With a `key`, a signed checkpoint is appended to
    /// `<path>.checkpoints` every `checkpoint_every` records (0: only at
    /// [`flush`](AuditSink::flush)).
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when a file cannot be opened, [`StoreError::Corrupt`] when its last
    /// line is not a valid record (run `voxguard audit verify`).
    pub async fn open(
        path: impl AsRef<Path>,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            JsonlWriter::open(&writer_path, durability, key, checkpoint_every)
        })
        .await
        .map_err(|join| StoreError::Io {
            source: std::io::Error::other(join),
        })??;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("voxguard-audit".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done.send(());
            })
            .map_err(|source| StoreError::Io { source })?;
        Ok(Self {
            handle: Handle { tx },
            path,
            stopped,
            durability,
        })
    }

    /// This sink's durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The sidecar file holding the checkpoints of the log at `path`: `<path>.checkpoints`.
    pub fn checkpoints_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".checkpoints");
        PathBuf::from(name)
    }

    /// Every complete record in the file at `path`, in file order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the file cannot be read, [`StoreError::Corrupt`] when a line is
    /// not a canonical record.
    pub async fn read_all(path: impl AsRef<Path>) -> Result<Vec<AuditRecord>, StoreError> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let mut records = Vec::new();
            for line in complete_lines(&path)? {
                let line = line?;
                records.push(
                    AuditRecord::from_json_line(&line)
                        .map_err(|source| StoreError::Corrupt { source })?,
                );
            }
            Ok(records)
        })
        .await
    }

    /// Every checkpoint in the sidecar of the log at `path` (none if it does not exist).
    ///
    /// # Errors
    ///
    /// As [`JsonlAuditLog::read_all`].
    pub async fn read_checkpoints(path: impl AsRef<Path>) -> Result<Vec<Checkpoint>, StoreError> {
        let path = Self::checkpoints_path(path.as_ref());
        blocking(move || read_checkpoint_file(&path)).await
    }

    /// Verify the file at `path` and its checkpoints from sequence number `from` (see
    /// [`voxguard_guard::audit::verify`]). A line that is not a canonical record counts as
    /// modified.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when a file cannot be read.
    pub async fn verify_path(
        path: impl AsRef<Path>,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        let path = path.as_ref().to_path_buf();
        let key = key.cloned();
        blocking(move || {
            // Checkpoints first: the writer appends them after their records.
            let checkpoints = read_checkpoint_file(&Self::checkpoints_path(&path))?;
            let mut verifier = Verifier::new(&checkpoints, key.as_ref(), from);
            for line in complete_lines(&path)? {
                let line = line?;
                match AuditRecord::from_json_line(&line) {
                    Ok(record) => verifier.push(&record),
                    Err(_) => verifier.push_unreadable(seq_hint(&line)),
                }
                if verifier.is_settled() {
                    break;
                }
            }
            Ok(verifier.finish())
        })
        .await
    }

    /// Verify this sink's file, as [`JsonlAuditLog::verify_path`].
    ///
    /// # Errors
    ///
    /// As [`JsonlAuditLog::verify_path`].
    pub async fn verify(
        &self,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        Self::verify_path(&self.path, key, from).await
    }

    /// Stop accepting events and wait for the writer to store everything queued and close the
    /// files.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the writer thread died.
    pub async fn close(self) -> Result<(), StoreError> {
        let Self {
            handle, stopped, ..
        } = self;
        drop(handle);
        stopped.await.map_err(|_| writer_stopped())
    }
}

impl std::fmt::Debug for JsonlAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlAuditLog")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AuditSink for JsonlAuditLog {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.handle.append(event).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.handle.flush().await
    }

    fn backend(&self) -> &'static str {
        "jsonl"
    }
}

/// Run blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| StoreError::Io {
            source: std::io::Error::other(join),
        })?
}

/// The sequence number a damaged line claims, if any can be read from it.
fn seq_hint(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// The newline-terminated lines of the file at `path` (a trailing partial line is left out).
fn complete_lines(
    path: &Path,
) -> Result<impl Iterator<Item = Result<String, StoreError>>, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io { source })?;
    let mut reader = BufReader::new(file);
    Ok(std::iter::from_fn(move || {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => line.strip_suffix('\n').map(|line| Ok(line.to_owned())),
            Err(source) => Some(Err(StoreError::Io { source })),
        }
    }))
}

fn read_checkpoint_file(path: &Path) -> Result<Vec<Checkpoint>, StoreError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut checkpoints = Vec::new();
    for line in complete_lines(path)? {
        let line = line?;
        checkpoints.push(
            Checkpoint::from_json_line(&line).map_err(|source| StoreError::Corrupt { source })?,
        );
    }
    Ok(checkpoints)
}

/// Open `path` for appending (creating it with mode `0600`), cut off a trailing partial line,
/// and return the file, its length and its last complete line.
fn open_append(path: &Path) -> std::io::Result<(File, u64, Option<String>)> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let (valid_len, last_line) = last_complete_line(&mut file)?;
    if file.metadata()?.len() > valid_len {
        file.set_len(valid_len)?;
    }
    Ok((file, valid_len, last_line))
}

/// The length of the file up to and including its last newline, and the line before it.
fn last_complete_line(file: &mut File) -> std::io::Result<(u64, Option<String>)> {
    const CHUNK: u64 = 8192;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if let Some(end) = tail.iter().rposition(|&b| b == b'\n') {
            let begin = tail[..end].iter().rposition(|&b| b == b'\n');
            if begin.is_some() || start == 0 {
                let line_start = begin.map_or(0, |b| b + 1);
                let line = String::from_utf8_lossy(&tail[line_start..end]).into_owned();
                return Ok((start + end as u64 + 1, Some(line)));
            }
        } else if start == 0 {
            return Ok((0, None));
        }
        let step = CHUNK.min(start);
        start -= step;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
    }
}

/// Make a new directory entry durable (the file's name, not only its bytes).
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// An open append-only file and how much of it is committed.
struct LogFile {
    file: File,
    len: u64,
}

/// The thread that owns the files.
struct JsonlWriter {
    log: LogFile,
    /// The checkpoint sidecar, when there is a key.
    sidecar: Option<LogFile>,
    tail: Tail,
    last_checkpoint: u64,
    key: Option<AuditKey>,
    checkpoint_every: u64,
    durability: Durability,
    /// Set when a failed write could not be rolled back: the file's state is unknown, so
    /// nothing more is written.
    poisoned: bool,
}

impl JsonlWriter {
    fn open(
        path: &Path,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io { source };
        let (file, len, last) = open_append(path).map_err(io)?;
        let last = last
            .map(|line| {
                AuditRecord::from_json_line(&line).map_err(|source| StoreError::Corrupt { source })
            })
            .transpose()?;
        let tail = Tail::resume(last.map(|record| (record.seq, record.hash, record.event.time_ms)));
        let mut last_checkpoint = 0;
        let sidecar = match key {
            Some(_) => {
                let sidecar_path = JsonlAuditLog::checkpoints_path(path);
                let (file, len, last) = open_append(&sidecar_path).map_err(io)?;
                if let Some(line) = last {
                    last_checkpoint = Checkpoint::from_json_line(&line)
                        .map_err(|source| StoreError::Corrupt { source })?
                        .seq;
                }
                if durability == Durability::Fsync {
                    file.sync_all().map_err(io)?;
                }
                Some(LogFile { file, len })
            }
            None => None,
        };
        if durability == Durability::Fsync {
            file.sync_all().map_err(io)?;
            sync_parent_dir(path).map_err(io)?;
        }
        Ok(Self {
            log: LogFile { file, len },
            sidecar,
            tail,
            last_checkpoint,
            key,
            checkpoint_every,
            durability,
            poisoned: false,
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        each_batch_blocking(rx, |batch| self.commit(batch));
    }

    /// Write one batch with one write per file (and one sync each when asked), then
    /// acknowledge it.
    fn commit(&mut self, mut batch: Batch) {
        let seal = batch.seal();
        let events = std::mem::take(&mut batch.events);
        let saved = (self.tail.clone(), self.last_checkpoint);
        let mut lines = String::new();
        let mut checkpoints = String::new();
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let record = self.tail.append(event);
            lines.push_str(&record.to_json_line());
            lines.push('\n');
            if checkpoint_due(self.key.as_ref(), self.checkpoint_every, record.seq) {
                self.checkpoint(
                    &mut checkpoints,
                    record.seq,
                    &record.hash,
                    record.event.time_ms,
                );
            }
            records.push(record);
        }
        let (head_seq, head_hash, head_time_ms) = self.tail.head();
        if seal && head_seq > self.last_checkpoint {
            let head_hash = head_hash.to_owned();
            self.checkpoint(&mut checkpoints, head_seq, &head_hash, head_time_ms);
        }
        let sync = seal || self.durability == Durability::Fsync;
        match self.persist(&lines, &checkpoints, sync) {
            Ok(()) => batch.acknowledge(Ok(records), Ok(())),
            Err(err) => {
                (self.tail, self.last_checkpoint) = saved;
                let err: &dyn std::error::Error = &err;
                batch.acknowledge(Err(err), Err(err));
            }
        }
    }

    /// Sign a checkpoint of the record `seq` (hash `hash`, stamped `time_ms`) when there is a
    /// key, and add its line to `out`.
    fn checkpoint(&mut self, out: &mut String, seq: u64, hash: &str, time_ms: u64) {
        if let Some(key) = &self.key {
            out.push_str(&Checkpoint::sign(key, seq, hash, time_ms).to_json_line());
            out.push('\n');
            self.last_checkpoint = seq;
        }
    }

    /// Append both texts (and sync when asked); on failure, cut both files back.
    fn persist(&mut self, lines: &str, checkpoints: &str, sync: bool) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "an earlier audit write failed and could not be undone",
            ));
        }
        let result =
            Self::append_to(&mut self.log, lines, sync).and_then(|()| match &mut self.sidecar {
                Some(sidecar) => Self::append_to(sidecar, checkpoints, sync),
                None => Ok(()),
            });
        match result {
            Ok(()) => {
                self.log.len += lines.len() as u64;
                if let Some(sidecar) = &mut self.sidecar {
                    sidecar.len += checkpoints.len() as u64;
                }
                Ok(())
            }
            Err(err) => {
                let mut undone = self.log.file.set_len(self.log.len).is_ok();
                if let Some(sidecar) = &self.sidecar {
                    undone &= sidecar.file.set_len(sidecar.len).is_ok();
                }
                self.poisoned = !undone;
                Err(err)
            }
        }
    }

    fn append_to(target: &mut LogFile, text: &str, sync: bool) -> std::io::Result<()> {
        if !text.is_empty() {
            target.file.write_all(text.as_bytes())?;
        }
        if sync {
            target.file.sync_data()?;
        }
        Ok(())
    }
}
