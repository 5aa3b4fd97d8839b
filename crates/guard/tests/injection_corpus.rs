//! Measures the prompt-injection screen on the corpus kept beside this file
//! (`injection_corpus/attacks.txt` and `injection_corpus/benign.txt`): the share of attacks it
//! detects and the share of ordinary caller inputs it wrongly flags, overall, per category and
//! on the held-out part (the lines after `# held-out from here`, written after the phrase table
//! was tuned). It prints every miss and false positive, and fails if detection drops below 95%
//! or false positives rise above 1% on the whole corpus. It owns no detection logic and must not
//! tune itself to the corpus: it only reads the files and asks the public detector.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use voxguard_guard::InjectionDetector;

const ATTACKS: &str = include_str!("injection_corpus/attacks.txt");
const BENIGN: &str = include_str!("injection_corpus/benign.txt");
const HELD_OUT: &str = "# held-out from here";

/// One corpus line.
struct Case<'a> {
    category: &'a str,
    text: &'a str,
    held_out: bool,
}

/// Parse `category<TAB>text` lines; `#` lines are comments, the held-out marker among them.
fn cases(file: &'static str) -> Vec<Case<'static>> {
    let mut held_out = false;
    let mut out = Vec::new();
    for (number, line) in file.lines().enumerate() {
        if line.trim() == HELD_OUT {
            held_out = true;
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((category, text)) = line.split_once('\t') else {
            panic!("line {}: expected category<TAB>text: {line:?}", number + 1);
        };
        assert!(!text.trim().is_empty(), "line {}: empty text", number + 1);
        out.push(Case {
            category,
            text,
            held_out,
        });
    }
    out
}

/// Flagged / total.
#[derive(Default, Clone, Copy)]
struct Tally {
    flagged: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, flagged: bool) {
        self.total += 1;
        self.flagged += usize::from(flagged);
    }

    fn rate(self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.flagged as f64 / self.total as f64
    }

    fn show(self) -> String {
        format!(
            "{:>3}/{:<3} {:5.1}%",
            self.flagged,
            self.total,
            100.0 * self.rate()
        )
    }
}

/// Overall, tuning part, held-out part and per-category tallies, plus the lines whose verdict
/// was wrong (`flagged != want`).
struct Report {
    all: Tally,
    tuning: Tally,
    held_out: Tally,
    categories: BTreeMap<&'static str, Tally>,
    wrong: Vec<String>,
}

fn measure(file: &'static str, want_flagged: bool) -> Report {
    let detector = InjectionDetector::default();
    let mut report = Report {
        all: Tally::default(),
        tuning: Tally::default(),
        held_out: Tally::default(),
        categories: BTreeMap::new(),
        wrong: Vec::new(),
    };
    for case in cases(file) {
        let found = detector.detect(case.text);
        let flagged = found.is_some();
        report.all.add(flagged);
        if case.held_out {
            report.held_out.add(flagged);
        } else {
            report.tuning.add(flagged);
        }
        report
            .categories
            .entry(case.category)
            .or_default()
            .add(flagged);
        if flagged != want_flagged {
            let kind = found.map_or("-", |k| k.as_str());
            let part = if case.held_out { " (held-out)" } else { "" };
            report
                .wrong
                .push(format!("  [{}{part}] {kind}: {}", case.category, case.text));
        }
    }
    report
}

fn print(title: &str, report: &Report) {
    println!("== {title}");
    println!("  all       {}", report.all.show());
    println!("  tuning    {}", report.tuning.show());
    println!("  held-out  {}", report.held_out.show());
    for (category, tally) in &report.categories {
        println!("  {category:<10}{}", tally.show());
    }
    println!("-- wrong verdicts ({}):", report.wrong.len());
    for line in &report.wrong {
        println!("{line}");
    }
}

#[test]
fn the_screen_catches_attacks_and_passes_benign_input() {
    let attacks = measure(ATTACKS, true);
    let benign = measure(BENIGN, false);
    print("attacks detected", &attacks);
    print("benign inputs flagged (false positives)", &benign);

    assert!(attacks.all.total >= 300, "{} attacks", attacks.all.total);
    assert!(benign.all.total >= 300, "{} benign", benign.all.total);
    assert!(
        attacks.held_out.total >= 100 && benign.held_out.total >= 100,
        "the held-out parts are missing"
    );
    let detection = attacks.all.rate();
    let false_positives = benign.all.rate();
    assert!(
        detection >= 0.95,
        "detection {:.1}% < 95%",
        100.0 * detection
    );
    assert!(
        false_positives <= 0.01,
        "false positives {:.1}% > 1%",
        100.0 * false_positives
    );
}

#[test]
fn corpus_lines_are_unique() {
    for file in [ATTACKS, BENIGN] {
        let mut seen = std::collections::HashSet::new();
        for case in cases(file) {
            assert!(seen.insert(case.text), "duplicate line: {}", case.text);
        }
    }
}
