//! Readings of the target process (`--pid`, or the baseline's own process) from `/proc`.
//!
//! This module owns the two figures the bench samples from outside the target: its resident
//! set and its CPU time. Linux only; a reading that cannot be made is `None`, never an error.
//! It must not decide when to sample: the run loop in [`mod@super::load`] does.

/// Resident set size of `pid` in bytes, from `/proc/<pid>/status`.
pub(super) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time of `pid` so far (user + system, every thread, including threads that have
/// exited), nanoseconds, from `/proc/<pid>/stat`. Its unit is USER_HZ, which Linux fixes at
/// 100 per second for user space on every architecture.
pub(super) fn cpu_ns(pid: u32) -> Option<u64> {
    const NS_PER_TICK: u64 = 10_000_000;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), …, utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * NS_PER_TICK)
}
