//! `sparsecaps plot DIR`: draws a sweep's chart again, `DIR/sweep.svg` and `DIR/sweep.png`,
//! from its `DIR/sweep.csv`, without rerunning the sweep. Times and sizes are charted as
//! ratios to the baseline row of `DIR/sweep.md` when that file is there (as `sweep` writes
//! it), else to the CSV's row at sparsity 0 (or its first row).

use std::path::Path;

use super::args::PlotArgs;
use super::sweep::{Curves, Row, SWEEP_HEADER, write_charts};
use crate::fsio::{ReadError, read_capped};
use crate::prune::PruneMethod;

/// Largest `sweep.csv` or `sweep.md` read (and a run's `metrics.csv` and `config.json`).
const MAX_TABLE_BYTES: u64 = 16 << 20;

/// Why a sweep's tables cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplotError {
    /// The file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file is not what `sweep` writes.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong, with the line number where there is one.
        reason: String,
    },
}

/// A sweep as read back from `sweep.csv`: its method and (sparsity, measurements) rows.
#[derive(Debug, PartialEq)]
struct Sweep {
    method: PruneMethod,
    rows: Vec<(f64, Row)>,
}

/// Redraws the chart of the sweep in `args.dir`, or draws a training run's K/N and accuracy
/// against sparsity when the folder holds a `metrics.csv` and no `sweep.csv`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let csv_path = args.dir.join("sweep.csv");
    if !csv_path.exists() {
        if !args.dir.join("metrics.csv").exists() {
            anyhow::bail!(
                "{} holds neither sweep.csv (from `sweep`) nor metrics.csv (from `train`)",
                args.dir.display()
            );
        }
        let svg = super::run_chart::write_run_charts(&args.dir, args.title)?;
        println!("wrote {} and run.png", svg.display());
        return Ok(());
    }
    let sweep = parse_csv(&read_text(&csv_path)?).map_err(|reason| malformed(&csv_path, reason))?;
    let base = baseline(&args.dir, &sweep.rows)?;
    let mut curves = Curves::default();
    for (s, r) in &sweep.rows {
        curves.push(*s, r, &base);
    }
    let title = args
        .title
        .unwrap_or_else(|| format!("{} pruning", sweep.method.name()));
    write_charts(&args.dir, sweep.method, curves, &title)?;
    println!("wrote {} and sweep.png", args.dir.join("sweep.svg").display());
    Ok(())
}

/// A [`ReplotError::Malformed`] of `path`.
pub(super) fn malformed(path: &Path, reason: String) -> ReplotError {
    ReplotError::Malformed {
        path: path.display().to_string(),
        reason,
    }
}

/// The whole of a text file of at most [`MAX_TABLE_BYTES`].
pub(super) fn read_text(path: &Path) -> Result<String, ReplotError> {
    let bytes = read_capped(path, MAX_TABLE_BYTES)?;
    String::from_utf8(bytes).map_err(|_| malformed(path, "not UTF-8 text".into()))
}

/// Cell `k` of a CSV line as a finite number, named `name` in errors.
fn num(cells: &[&str], k: usize, name: &str) -> Result<f64, String> {
    let text = cells[k].trim();
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{name} '{text}' is not a finite number")),
    }
}

/// Cell `k` of a CSV line as a count, named `name` in errors.
fn count(cells: &[&str], k: usize, name: &str) -> Result<u64, String> {
    let text = cells[k].trim();
    text.parse()
        .map_err(|_| format!("{name} '{text}' is not a whole number"))
}

/// One data line of `sweep.csv` (in [`SWEEP_HEADER`]'s column order): sparsity, method and
/// measurements.
fn parse_row(line: &str) -> Result<(f64, String, Row), String> {
    let c: Vec<&str> = line.split(',').collect();
    let want = SWEEP_HEADER.split(',').count();
    if c.len() != want {
        return Err(format!("{} fields, want {want}", c.len()));
    }
    let row = Row {
        accuracy: num(&c, 2, "accuracy")?,
        alive: count(&c, 3, "alive_capsules")? as usize,
        capsules: count(&c, 4, "capsules")? as usize,
        types: count(&c, 5, "alive_types")? as usize,
        file_bytes: count(&c, 6, "file_bytes")?,
        mflops: num(&c, 7, "mflops_per_image")?,
        train_step_ms: num(&c, 8, "train_step_ms")?,
        infer_ms: num(&c, 9, "infer_ms")?,
        latency_ms: num(&c, 10, "latency_ms")?,
        weight_sparsity: num(&c, 11, "weight_sparsity")?,
    };
    let sparsity = num(&c, 0, "sparsity")?;
    check_row(sparsity, &row)?;
    Ok((sparsity, c[1].trim().to_string(), row))
}

/// Refuses values that no sweep writes: fractions outside 0..1, more alive capsules than
/// capsules, empty files, negative or zero times (sizes and times are divided by).
fn check_row(sparsity: f64, r: &Row) -> Result<(), String> {
    for (name, v) in [
        ("sparsity", sparsity),
        ("accuracy", r.accuracy),
        ("weight_sparsity", r.weight_sparsity),
    ] {
        if !(0.0..=1.0).contains(&v) {
            // 1e300 as 1e300, not as 301 digits
            let shown = if v.abs() < 1e6 {
                v.to_string()
            } else {
                format!("{v:e}")
            };
            return Err(format!("{name} {shown} must lie in 0..1"));
        }
    }
    if r.capsules == 0 || r.alive > r.capsules || r.types > r.alive.max(1) {
        return Err(format!(
            "{} alive capsules of {} in {} types is not a sweep's count",
            r.alive, r.capsules, r.types
        ));
    }
    if r.file_bytes == 0 {
        return Err("file_bytes must be above 0".into());
    }
    // a time under the table's rounding is written as 0: no ratio is drawn for it
    for (name, v) in [
        ("infer_ms", r.infer_ms),
        ("train_step_ms", r.train_step_ms),
        ("latency_ms", r.latency_ms),
    ] {
        if v < 0.0 {
            return Err(format!("{name} {v} must not be negative"));
        }
    }
    if r.mflops < 0.0 {
        return Err(format!("mflops_per_image {} must not be negative", r.mflops));
    }
    Ok(())
}

/// A whole `sweep.csv`: the header, then rows of one method (magnitude, capsules or
/// backbone).
fn parse_csv(text: &str) -> Result<Sweep, String> {
    let mut lines = text.lines().enumerate();
    if lines.next().map(|(_, l)| l.trim()) != Some(SWEEP_HEADER) {
        return Err(format!("line 1 is not the header {SWEEP_HEADER}"));
    }
    let mut method: Option<PruneMethod> = None;
    let mut rows = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let at = |e: String| format!("line {}: {e}", i + 1);
        let (s, m, row) = parse_row(line).map_err(at)?;
        let m: PruneMethod = m.parse().map_err(at)?;
        if method.is_some_and(|first| first != m) {
            return Err(at(format!("method '{}' differs from the first row's", m.name())));
        }
        method = Some(m);
        if rows.iter().any(|(t, _)| *t == s) {
            return Err(at(format!("sparsity {s} appears twice")));
        }
        rows.push((s, row));
    }
    let method = method.ok_or("no rows below the header")?;
    Ok(Sweep { method, rows })
}

/// The cells of a Markdown table line, trimmed.
fn md_cells(line: &str) -> Vec<&str> {
    line.trim().trim_matches('|').split('|').map(str::trim).collect()
}

/// The baseline's file size and inference time, from the `baseline` row of a `sweep.md`
/// (other fields 0).
fn parse_md_baseline(text: &str) -> Result<Row, String> {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .map(md_cells)
        .collect();
    let header = rows.first().ok_or("no table")?;
    let base = rows
        .iter()
        .find(|r| r.first() == Some(&"baseline"))
        .ok_or("no baseline row")?;
    let lead = |name: &str| -> Result<f64, String> {
        let k = header.iter().position(|h| *h == name);
        k.and_then(|k| base.get(k))
            .and_then(|c| c.split_whitespace().next()?.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or(format!(
                "cannot read the baseline's '{name}' (a number, not negative)"
            ))
    };
    Ok(Row {
        file_bytes: (lead("file")? * 1e6).round() as u64,
        infer_ms: lead("inference b128")?,
        ..Row::default()
    })
}

/// What times and sizes are divided by: `dir/sweep.md`'s baseline if that file is there,
/// else the row at sparsity 0, else the first row.
fn baseline(dir: &Path, rows: &[(f64, Row)]) -> Result<Row, ReplotError> {
    let md = dir.join("sweep.md");
    if md.exists() {
        return parse_md_baseline(&read_text(&md)?).map_err(|reason| malformed(&md, reason));
    }
    let zero = rows.iter().find(|(s, _)| *s == 0.0).or(rows.first());
    Ok(zero.map(|(_, r)| r.clone()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "sparsity,method,accuracy,alive_capsules,capsules,alive_types,file_bytes,\
mflops_per_image,train_step_ms,infer_ms,latency_ms,weight_sparsity
0,capsules,0.9884,576,576,16,10604968,107.39,448.3,134.9,2.400,0.0000
0.5,capsules,0.9884,288,576,8,6474784,58.42,269.3,81.8,1.989,0.4975
";

    #[test]
    fn csv_rows_are_read_back() {
        let sweep = parse_csv(CSV).unwrap();
        assert_eq!(sweep.method, PruneMethod::Capsules);
        assert_eq!(sweep.rows.len(), 2);
        let (s, r) = &sweep.rows[1];
        assert_eq!(*s, 0.5);
        assert_eq!(
            (r.alive, r.capsules, r.types, r.file_bytes),
            (288, 576, 8, 6474784)
        );
        assert_eq!((r.infer_ms, r.weight_sparsity), (81.8, 0.4975));
    }

    #[test]
    fn malformed_csv_names_the_line() {
        let bad = CSV.replace("0.5,capsules,0.9884,288", "0.5,capsules,x,288");
        assert_eq!(
            parse_csv(&bad).unwrap_err(),
            "line 3: accuracy 'x' is not a finite number"
        );
        let short = CSV.replace(",0.4975", "");
        assert_eq!(parse_csv(&short).unwrap_err(), "line 3: 11 fields, want 12");
        let mixed = CSV.replace("0.5,capsules", "0.5,magnitude");
        assert!(
            parse_csv(&mixed)
                .unwrap_err()
                .starts_with("line 3: method 'magnitude'")
        );
        assert!(
            parse_csv("a,b\n")
                .unwrap_err()
                .starts_with("line 1 is not the header")
        );
        assert_eq!(parse_csv(SWEEP_HEADER).unwrap_err(), "no rows below the header");
        // values no sweep writes
        for (from, to, says) in [
            (
                "0.5,capsules,0.9884",
                "1.5,capsules,0.9884",
                "sparsity 1.5 must lie in 0..1",
            ),
            (
                "0.5,capsules,0.9884",
                "0.5,capsules,-7",
                "accuracy -7 must lie in 0..1",
            ),
            ("0.9884,288,576", "0.9884,600,576", "600 alive capsules of 576"),
            ("0.9884,288,576", "0.9884,0,0", "0 alive capsules of 0"),
            (
                "6474784,58.42,269.3,81.8",
                "0,58.42,269.3,81.8",
                "file_bytes must be above 0",
            ),
            (
                "58.42,269.3,81.8",
                "58.42,269.3,-1",
                "infer_ms -1 must not be negative",
            ),
            ("0.5,capsules", "0,capsules", "sparsity 0 appears twice"),
        ] {
            let bad = CSV.replace(from, to);
            assert_ne!(bad, CSV, "{from}");
            let err = parse_csv(&bad).unwrap_err();
            assert!(err.starts_with("line 3: ") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn md_baseline_gives_size_and_inference_time() {
        let md = "| capsules sparsity | accuracy | weight sparsity | alive capsules K/N | alive types \
| file | MFLOPs/image | train step b128 | inference b128 | latency b1 |
|---|---|---|---|---|---|---|---|---|---|
| baseline | 99.08% (+0.00 pt) | 0.0% | 576/576 (1.00×) | 16 | 10.60 MB (1.00×) | 107.4 (1.00×) \
| 539 ms (1.00×) | 128 ms (1.00×) | 2.53 ms (1.00×) |
";
        let base = parse_md_baseline(md).unwrap();
        assert_eq!((base.file_bytes, base.infer_ms), (10_600_000, 128.0));
        assert_eq!(
            parse_md_baseline("| a | b |\n| 0 | 1 |\n").unwrap_err(),
            "no baseline row"
        );
        let negative = md.replace("128 ms (1.00×)", "-1 ms (1.00×)");
        assert!(
            parse_md_baseline(&negative)
                .unwrap_err()
                .contains("'inference b128'")
        );
    }
}
