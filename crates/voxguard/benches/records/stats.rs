//! Measurement helpers of the records benchmark: latency histograms (µs, hdrhistogram),
//! running an operation n times with k concurrent tasks, and the Markdown table it prints.
//!
//! It owns how figures are taken and shown; it must not know what is being measured.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::BenchResult;

/// Latencies in microseconds, up to 10 minutes.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// `d` in whole microseconds, at least 1 (the histogram's lowest value).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A latency in the table's unit: µs below 1 ms, else ms.
pub(crate) fn show(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 100_000 {
        format!("{:.2} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.0} ms", us as f64 / 1_000.0)
    }
}

/// A count with thousands separators.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` operations that took `elapsed` together, with their latencies.
pub(crate) struct Stat {
    pub(crate) elapsed: Duration,
    pub(crate) hist: Histogram<u64>,
}

impl Stat {
    /// Operations per second, over the whole elapsed time.
    pub(crate) fn rate(&self) -> String {
        let per_sec = self.hist.len() as f64 / self.elapsed.as_secs_f64();
        format!("{} /s", count(per_sec.round() as u64))
    }
}

/// The rows of the printed table.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) rows: Vec<String>,
}

impl Table {
    pub(crate) fn stat(&mut self, what: &str, stat: &Stat) {
        let h = &stat.hist;
        self.rows.push(format!(
            "| {what} | {} | {} | {} | {} | {} |",
            count(h.len()),
            stat.rate(),
            show(h.value_at_quantile(0.5)),
            show(h.value_at_quantile(0.99)),
            show(h.max()),
        ));
    }

    pub(crate) fn note(&mut self, what: &str, n: u64, total: Duration, rate: &str) {
        self.rows.push(format!(
            "| {what} | {} | {rate} | — | — | {} (whole operation) |",
            count(n),
            show(micros(total)),
        ));
    }

    pub(crate) fn print(&self, heading: &str) {
        println!("\n{heading}\n");
        println!("| Measurement | n | Throughput | p50 | p99 | max |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("{row}");
        }
    }
}

/// Run `op(i)` for `i` in `0..n`, `writers` at a time (each task a contiguous share).
pub(crate) async fn measure<F, Fut, T>(
    n: usize,
    writers: usize,
    op: F,
) -> BenchResult<(Stat, Vec<T>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = BenchResult<T>> + Send,
    T: Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        let range = (w * n / writers)..((w + 1) * n / writers);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut out = Vec::with_capacity(range.len());
            for i in range {
                let t = Instant::now();
                out.push(op(i).await?);
                hist.record(micros(t.elapsed()))?;
            }
            Ok::<_, Box<dyn Error + Send + Sync>>((hist, out))
        }));
    }
    let mut hist = histogram();
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        let (h, out) = task.await??;
        hist.add(&h)?;
        all.extend(out);
    }
    Ok((
        Stat {
            elapsed: start.elapsed(),
            hist,
        },
        all,
    ))
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
