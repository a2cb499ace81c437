//! The bench's regression gate: the instruction counts `cargo xtask bench` measures against
//! the figures committed in BENCHMARKS.md (its "Committed figures" JSON block).
//!
//! Counts under QEMU are exact, so any difference is a change of the code (or of the
//! toolchain). A case fails when its instructions per step, or its 1-step run (set-up
//! included), grow by more than [`TOLERANCE_PERCENT`] % of the committed figure; a case that
//! got more than that cheaper passes with a notice asking to update the figures. A case the
//! firmware measures without a committed figure, or a committed case of a measured machine
//! the firmware no longer measures, fails too: an intended change updates the figures in the
//! same commit (`cargo xtask bench --update`).

use crate::bench::{Record, MACHINES, STEPS};
use crate::Result;

/// The regression threshold, in percent of the committed figure.
pub const TOLERANCE_PERCENT: u64 = 1;

/// The heading of BENCHMARKS.md's section that holds the JSON block.
pub const HEADING: &str = "## Committed figures";

/// One case: machine, cell, precision, input, hidden.
pub type Key = (String, String, String, u64, u64);

/// The two counts of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// The 1-step run (set-up included).
    pub short: u64,
    /// The [`STEPS`]-step run.
    pub long: u64,
    /// Graph cases: one decision after [`WINDOW`](crate::bench::WINDOW) frames.
    pub decision: Option<u64>,
}

impl Counts {
    /// Instructions of the steps after the first, i.e. `(STEPS − 1) ×` instructions per step.
    fn steps(&self) -> u64 {
        self.long.saturating_sub(self.short)
    }
    fn per_step(&self) -> f64 {
        self.steps() as f64 / (STEPS - 1) as f64
    }
}

/// The committed figures: what they were measured with, and every case in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub rustc: String,
    pub qemu: String,
    pub cases: Vec<(Key, Counts)>,
}

impl Figures {
    fn get(&self, k: &Key) -> Option<Counts> {
        self.cases.iter().find(|(c, _)| c == k).map(|(_, v)| *v)
    }
}

pub fn key(r: &Record) -> Key {
    (
        r.machine.to_string(),
        r.cell.clone(),
        r.precision.clone(),
        r.input,
        r.hidden,
    )
}

fn name(k: &Key) -> String {
    format!("{} {} {} I{} H{}", k.0, k.1, k.2, k.3, k.4)
}

/// The text of the JSON block (between the ```` ```json ```` fence and the closing fence)
/// of the section [`HEADING`], with the byte range it occupies in `doc`.
fn block(doc: &str) -> Result<(usize, usize)> {
    let h = doc
        .find(&format!("\n{HEADING}"))
        .ok_or_else(|| format!("BENCHMARKS.md: no section \"{HEADING}\""))?;
    let open = "```json\n";
    let start = doc[h..]
        .find(open)
        .map(|i| h + i + open.len())
        .ok_or_else(|| format!("BENCHMARKS.md: no ```json block under \"{HEADING}\""))?;
    let end = doc[start..]
        .find("```")
        .map(|i| start + i)
        .ok_or_else(|| "BENCHMARKS.md: the ```json block is not closed".to_string())?;
    Ok((start, end))
}

/// Reads the committed figures from BENCHMARKS.md's text.
pub fn parse(doc: &str) -> Result<Figures> {
    let (start, end) = block(doc)?;
    let v: serde_json::Value = serde_json::from_str(&doc[start..end])
        .map_err(|e| format!("BENCHMARKS.md: committed figures: {e}"))?;
    let text = |v: &serde_json::Value, f: &str| -> Result<String> {
        v.get(f)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("BENCHMARKS.md: committed figures: no string \"{f}\"").into())
    };
    let num = |v: &serde_json::Value, f: &str| -> Result<u64> {
        v.get(f).and_then(|x| x.as_u64()).ok_or_else(|| {
            format!("BENCHMARKS.md: committed figures: no whole number \"{f}\" in {v}").into()
        })
    };
    let mut fig = Figures {
        rustc: text(&v, "rustc")?,
        qemu: text(&v, "qemu")?,
        cases: Vec::new(),
    };
    let cases = v
        .get("cases")
        .and_then(|c| c.as_array())
        .ok_or("BENCHMARKS.md: committed figures: no array \"cases\"")?;
    let long_name = format!("instructions_{STEPS}_steps");
    for c in cases {
        let k = (
            text(c, "machine")?,
            text(c, "cell")?,
            text(c, "precision")?,
            num(c, "input")?,
            num(c, "hidden")?,
        );
        let decision = match c.get("instructions_decision") {
            None => None,
            Some(_) => Some(num(c, "instructions_decision")?),
        };
        let counts = Counts {
            short: num(c, "instructions_1_step")?,
            long: num(c, &long_name)?,
            decision,
        };
        if fig.get(&k).is_some() {
            return Err(format!("BENCHMARKS.md: committed figures: {} twice", name(&k)).into());
        }
        fig.cases.push((k, counts));
    }
    Ok(fig)
}

/// The JSON block's text: one case per line (diffs show what moved), ending with a newline.
pub fn render(fig: &Figures) -> String {
    let q = |t: &str| serde_json::Value::from(t).to_string();
    let mut s = String::from("{\n");
    s += &format!(
        "  \"rustc\": {},\n  \"qemu\": {},\n",
        q(&fig.rustc),
        q(&fig.qemu)
    );
    s += "  \"cases\": [\n";
    for (i, (k, c)) in fig.cases.iter().enumerate() {
        let sep = if i + 1 < fig.cases.len() { "," } else { "" };
        let decision = c.decision.map_or(String::new(), |d| {
            format!(", \"instructions_decision\": {d}")
        });
        s += &format!(
            "    {{\"machine\": {}, \"cell\": {}, \"precision\": {}, \"input\": {}, \"hidden\": {}, \
             \"instructions_1_step\": {}, \"instructions_{STEPS}_steps\": {}, \"instructions_per_step\": {:.1}{decision}}}{sep}\n",
            q(&k.0),
            q(&k.1),
            q(&k.2),
            k.3,
            k.4,
            c.short,
            c.long,
            c.per_step()
        );
    }
    s += "  ]\n}\n";
    s
}

/// The committed figures with the cases of the measured machines replaced by `measured`
/// (machines in [`MACHINES`] order, cases in the firmware's order).
pub fn merge(old: &Figures, measured: &[(Key, Counts)], rustc: &str, qemu: &str) -> Figures {
    let measured_machines: Vec<&str> = measured.iter().map(|(k, _)| k.0.as_str()).collect();
    let mut cases = Vec::new();
    let mut machines: Vec<&str> = MACHINES.to_vec();
    for (k, _) in old.cases.iter().chain(measured) {
        if !machines.contains(&k.0.as_str()) {
            machines.push(k.0.as_str());
        }
    }
    for m in machines {
        if measured_machines.contains(&m) {
            cases.extend(measured.iter().filter(|(k, _)| k.0 == m).cloned());
        } else {
            cases.extend(old.cases.iter().filter(|(k, _)| k.0 == m).cloned());
        }
    }
    Figures {
        rustc: rustc.to_string(),
        qemu: qemu.to_string(),
        cases,
    }
}

/// BENCHMARKS.md's text with its JSON block replaced by `fig`.
pub fn replace_block(doc: &str, fig: &Figures) -> Result<String> {
    let (start, end) = block(doc)?;
    Ok(format!("{}{}{}", &doc[..start], render(fig), &doc[end..]))
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// More than the tolerance more expensive: fails.
    pub regressions: Vec<String>,
    /// More than the tolerance cheaper: passes, asks to update the figures.
    pub improvements: Vec<String>,
    /// Changed within the tolerance: passes.
    pub within: Vec<String>,
    /// Measured, no committed figure: fails.
    pub new: Vec<String>,
    /// Committed for a measured machine, not measured: fails.
    pub missing: Vec<String>,
    /// Cases compared.
    pub compared: usize,
}

impl Outcome {
    pub fn pass(&self) -> bool {
        self.regressions.is_empty() && self.new.is_empty() && self.missing.is_empty()
    }
}

/// `+1.23 %` of `new` against `old`.
fn percent(old: u64, new: u64) -> String {
    if old == 0 {
        return "n/a".into();
    }
    format!("{:+.2} %", 100.0 * (new as f64 - old as f64) / old as f64)
}

/// How `new` compares with `old` under the tolerance: `1` regression, `-1` improvement,
/// `0` equal or within.
fn verdict(old: u64, new: u64) -> i8 {
    // Integer arithmetic: more than 1 % is new·100 > old·101.
    let (o, n) = (u128::from(old), u128::from(new));
    let t = u128::from(TOLERANCE_PERCENT);
    if n * 100 > o * (100 + t) {
        1
    } else if n * 100 < o * (100 - t) {
        -1
    } else {
        0
    }
}

/// Compares the measured cases with the committed figures. Only the machines that appear in
/// `measured_machines` are checked for missing cases.
pub fn compare(fig: &Figures, measured: &[(Key, Counts)], measured_machines: &[&str]) -> Outcome {
    let mut o = Outcome::default();
    for (k, m) in measured {
        let Some(c) = fig.get(k) else {
            o.new.push(format!(
                "{}: {:.1} instructions per step, no committed figure",
                name(k),
                m.per_step()
            ));
            continue;
        };
        o.compared += 1;
        let mut checks = vec![
            ("per step", c.steps(), m.steps(), c.per_step(), m.per_step()),
            (
                "1-step run",
                c.short,
                m.short,
                c.short as f64,
                m.short as f64,
            ),
        ];
        // a decision measured without a committed one (or the reverse) compares with 0:
        // a regression (or an improvement) asking for the figures to be updated
        if c.decision.is_some() || m.decision.is_some() {
            let (old, new) = (c.decision.unwrap_or(0), m.decision.unwrap_or(0));
            checks.push(("decision", old, new, old as f64, new as f64));
        }
        let mut worst = 0i8;
        let mut parts = Vec::new();
        for (what, old, new, old_shown, new_shown) in checks {
            if old == new {
                continue;
            }
            let v = verdict(old, new);
            worst = if v == 1 || worst == 1 {
                1
            } else {
                worst.min(v)
            };
            parts.push(format!(
                "{what} {old_shown:.1} -> {new_shown:.1} ({})",
                percent(old, new)
            ));
        }
        if parts.is_empty() {
            continue;
        }
        let line = format!("{}: {}", name(k), parts.join(", "));
        match worst {
            1 => o.regressions.push(line),
            -1 => o.improvements.push(line),
            _ => o.within.push(line),
        }
    }
    for (k, _) in &fig.cases {
        if measured_machines.contains(&k.0.as_str()) && !measured.iter().any(|(m, _)| m == k) {
            o.missing.push(format!(
                "{}: committed, not measured by the firmware",
                name(k)
            ));
        }
    }
    o
}

/// The report lines of an outcome (printed by `cargo xtask bench`).
pub fn report(o: &Outcome, fig: &Figures, rustc: &str, qemu: &str) -> Vec<String> {
    let mut v = Vec::new();
    let t = TOLERANCE_PERCENT;
    for l in &o.regressions {
        v.push(format!("REGRESSION (> {t} %) {l}"));
    }
    for l in &o.new {
        v.push(format!("NEW {l}"));
    }
    for l in &o.missing {
        v.push(format!("MISSING {l}"));
    }
    for l in &o.improvements {
        v.push(format!("improved (> {t} %) {l}"));
    }
    for l in &o.within {
        v.push(format!("changed (within {t} %) {l}"));
    }
    if !o.pass() || !o.improvements.is_empty() {
        v.push(
            "an intended change updates the figures in the same commit: `cargo xtask bench --update` \
             (rewrites BENCHMARKS.md's results and committed figures)"
                .into(),
        );
    }
    if !o.pass() && (fig.rustc != rustc || fig.qemu != qemu) {
        v.push(format!(
            "note: the figures were measured with {} and {}; this run used {rustc} and {qemu}",
            fig.rustc, fig.qemu
        ));
    }
    v.push(format!(
        "gate: {} case(s) compared with BENCHMARKS.md: {} regression(s), {} new, {} missing, {} improved, {} within {t} %",
        o.compared,
        o.regressions.len(),
        o.new.len(),
        o.missing.len(),
        o.improvements.len(),
        o.within.len()
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(m: &str, cell: &str, i: u64, h: u64) -> Key {
        (m.into(), cell.into(), "int8".into(), i, h)
    }
    /// A case whose per-step count is `per_step` (set-up 1000).
    fn c(per_step: u64) -> Counts {
        Counts {
            short: 1000 + per_step,
            long: 1000 + per_step * STEPS,
            decision: None,
        }
    }
    fn figs(cases: Vec<(Key, Counts)>) -> Figures {
        Figures {
            rustc: "rustc 1.95.0".into(),
            qemu: "QEMU 10.0.2".into(),
            cases,
        }
    }
    const DOC: &str = "# Benchmarks\n\ntext\n\n## Committed figures\n\nprose\n\n```json\n\
        {\"rustc\": \"rustc 1.95.0\", \"qemu\": \"QEMU 10.0.2\", \"cases\": [\n\
        {\"machine\": \"microbit\", \"cell\": \"lstm\", \"precision\": \"int8\", \"input\": 9,\n\
         \"hidden\": 32, \"instructions_1_step\": 101000, \"instructions_65_steps\": 5673480,\n\
         \"instructions_per_step\": 87070.0}]}\n```\n\nafter\n";

    #[test]
    fn parses_the_block_and_round_trips() {
        let f = parse(DOC).unwrap();
        assert_eq!(f.rustc, "rustc 1.95.0");
        assert_eq!(f.qemu, "QEMU 10.0.2");
        assert_eq!(f.cases.len(), 1);
        assert_eq!(f.cases[0].0, k("microbit", "lstm", 9, 32));
        assert_eq!(
            f.cases[0].1,
            Counts {
                short: 101_000,
                long: 5_673_480,
                decision: None
            }
        );
        assert_eq!(f.cases[0].1.per_step(), 87_070.0);
        let doc2 = replace_block(DOC, &f).unwrap();
        assert!(
            doc2.starts_with("# Benchmarks\n\ntext\n\n## Committed figures\n\nprose\n\n```json\n")
        );
        assert!(doc2.ends_with("\n```\n\nafter\n"), "{doc2}");
        assert_eq!(parse(&doc2).unwrap(), f);
    }

    #[test]
    fn refuses_missing_or_malformed_blocks() {
        let e = |d: &str| parse(d).err().unwrap().to_string();
        assert!(e("# Benchmarks\n").contains("no section"));
        assert!(e("x\n## Committed figures\n\nno block\n").contains("no ```json block"));
        assert!(e("x\n## Committed figures\n```json\n{\n").contains("not closed"));
        assert!(e("x\n## Committed figures\n```json\n{]\n```\n").contains("committed figures:"));
        let no_hidden = DOC.replace("\"hidden\": 32, ", "");
        assert!(e(&no_hidden).contains("\"hidden\""), "{}", e(&no_hidden));
        let negative = DOC.replace("101000", "-1");
        assert!(e(&negative).contains("instructions_1_step"));
        let twice = DOC.replace("}]}", "}, {\"machine\": \"microbit\", \"cell\": \"lstm\", \"precision\": \"int8\", \"input\": 9, \"hidden\": 32, \"instructions_1_step\": 1, \"instructions_65_steps\": 2}]}");
        assert!(e(&twice).contains("microbit lstm int8 I9 H32 twice"));
    }

    #[test]
    fn one_percent_rule() {
        let key = k("microbit", "lstm", 9, 32);
        let fig = figs(vec![(key.clone(), c(10_000))]);
        let run = |m: Counts| compare(&fig, &[(key.clone(), m)], &["microbit"]);
        // Identical: nothing to say.
        let o = run(c(10_000));
        assert!(o.pass() && o.within.is_empty() && o.improvements.is_empty());
        assert_eq!(o.compared, 1);
        // Exactly +1 % per step: within.
        let o = run(c(10_100));
        assert!(o.pass(), "{o:?}");
        assert_eq!(o.within.len(), 1);
        // +1 % and one instruction per step: a regression.
        let o = run(c(10_101));
        assert!(!o.pass());
        assert_eq!(o.regressions.len(), 1);
        assert!(
            o.regressions[0].contains("per step 10000.0 -> 10101.0 (+1.01 %)"),
            "{o:?}"
        );
        // −1 %: within; −1 % and one: an improvement, which passes.
        assert_eq!(run(c(9_900)).within.len(), 1);
        let o = run(c(9_899));
        assert!(o.pass());
        assert_eq!(o.improvements.len(), 1);
        // Set-up only (the 1-step run), per step unchanged: gated too.
        let mut m = c(10_000);
        m.short += 200; // 11000 -> 11200: +1.8 %
        m.long += 200;
        let o = run(m);
        assert_eq!(o.regressions.len(), 1, "{o:?}");
        assert!(o.regressions[0].contains("1-step run 11000.0 -> 11200.0 (+1.82 %)"));
        // One check better (per step −10 %), the other worse (1-step run +4.5 %): a regression.
        let mut m = c(9_000);
        m.short += 1_500;
        m.long += 1_500;
        assert_eq!(run(m).regressions.len(), 1);
    }

    #[test]
    fn decision_is_gated_and_round_trips() {
        let key = k("microbit", "lstm+mlp", 9, 32);
        let mut base = c(10_000);
        base.decision = Some(5_000);
        let fig = figs(vec![(key.clone(), base)]);
        let doc = replace_block(DOC, &fig).unwrap();
        assert!(doc.contains("\"instructions_decision\": 5000}"), "{doc}");
        assert_eq!(parse(&doc).unwrap(), fig);
        let run = |d: Option<u64>| {
            let mut m = base;
            m.decision = d;
            compare(&fig, &[(key.clone(), m)], &["microbit"])
        };
        assert!(run(Some(5_000)).within.is_empty());
        assert_eq!(run(Some(5_050)).within.len(), 1);
        let o = run(Some(5_051));
        assert_eq!(o.regressions.len(), 1, "{o:?}");
        assert!(o.regressions[0].contains("decision 5000.0 -> 5051.0 (+1.02 %)"));
        assert_eq!(run(Some(4_000)).improvements.len(), 1);
        // a plain case without a committed decision that starts measuring one
        let plain = figs(vec![(key.clone(), c(10_000))]);
        let o = compare(&plain, &[(key.clone(), base)], &["microbit"]);
        assert_eq!(o.regressions.len(), 1, "{o:?}");
    }

    #[test]
    fn new_and_missing_cases_fail_other_machines_are_skipped() {
        let a = k("microbit", "lstm", 9, 32);
        let b = k("microbit", "gru", 9, 32);
        let other = k("sifive-e", "lstm", 9, 32);
        let fig = figs(vec![(a.clone(), c(100)), (other.clone(), c(100))]);
        // `a` dropped, `b` added; sifive-e not measured: its case is not missing.
        let o = compare(&fig, &[(b.clone(), c(100))], &["microbit"]);
        assert!(!o.pass());
        assert_eq!(o.new.len(), 1);
        assert!(o.new[0].starts_with("microbit gru int8 I9 H32"));
        assert_eq!(o.missing.len(), 1);
        assert!(o.missing[0].starts_with("microbit lstm int8 I9 H32"));
        assert_eq!(o.compared, 0);
        // A machine that produced no case at all (build failed) still counts as measured.
        let o = compare(&fig, &[], &["sifive-e"]);
        assert_eq!(o.missing.len(), 1);
        assert!(o.missing[0].starts_with("sifive-e"));
    }

    #[test]
    fn merge_replaces_only_the_measured_machines() {
        let a = k("mps2-an386", "lstm", 9, 32);
        let b = k("microbit", "lstm", 9, 32);
        let s = k("sifive-e", "lstm", 9, 32);
        let old = figs(vec![
            (a.clone(), c(1)),
            (b.clone(), c(2)),
            (s.clone(), c(3)),
        ]);
        let b2 = k("microbit", "gru", 9, 32);
        let f = merge(&old, &[(b2.clone(), c(5))], "rustc 2", "QEMU 11");
        assert_eq!(f.rustc, "rustc 2");
        assert_eq!(
            f.cases,
            vec![(a, c(1)), (b2, c(5)), (s, c(3))],
            "microbit's cases replaced, the others kept in machine order"
        );
    }

    #[test]
    fn report_says_what_to_do() {
        let a = k("microbit", "lstm", 9, 32);
        let fig = figs(vec![(a.clone(), c(100))]);
        let o = compare(&fig, &[(a.clone(), c(90))], &["microbit"]);
        let r = report(&o, &fig, "rustc 1.95.0", "QEMU 10.0.2");
        assert!(
            r[0].starts_with(
                "improved (> 1 %) microbit lstm int8 I9 H32: per step 100.0 -> 90.0 (-10.00 %)"
            ),
            "{r:?}"
        );
        assert!(r.iter().any(|l| l.contains("cargo xtask bench --update")));
        let o = compare(&fig, &[(a, c(200))], &["microbit"]);
        let r = report(&o, &fig, "rustc 1.96.0", "QEMU 10.0.2");
        assert!(r[0].starts_with("REGRESSION (> 1 %)"));
        assert!(r.iter().any(|l| l.contains("this run used rustc 1.96.0")));
        assert!(r.last().unwrap().starts_with("gate: 1 case(s) compared"));
    }
}
