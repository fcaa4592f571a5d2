//! `sparsecaps plot RUN_DIR` for a training run that pruned: the paper's figure, alive
//! primary capsules K/N and test accuracy against the weight sparsity the run reached after
//! each epoch, drawn from `RUN_DIR/metrics.csv` as `RUN_DIR/run.svg` and `RUN_DIR/run.png`.

use std::path::Path;

use super::plot::{Chart, Series, png_chart, svg_chart};
use super::replot::{malformed, read_text};
use crate::export::write_atomic;

/// One epoch of a run as the chart uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPoint {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Global weight sparsity after the epoch (0..1).
    pub sparsity: f64,
    /// Test accuracy after the epoch (0..1).
    pub accuracy: f64,
    /// Alive primary capsules K.
    pub alive: u64,
    /// All primary capsules N.
    pub capsules: u64,
}

/// The columns the chart reads, by their names in `metrics.csv`'s header.
const COLUMNS: [&str; 5] = ["epoch", "sparsity", "test_accuracy", "alive_capsules", "capsules"];

/// Reads the rows of a `metrics.csv` (columns found by name, so older files with other
/// columns too still read). The error names the line and the cell.
pub fn parse_metrics(text: &str) -> Result<Vec<RunPoint>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("empty file")?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut at = [0usize; COLUMNS.len()];
    for (slot, want) in at.iter_mut().zip(COLUMNS) {
        *slot = names
            .iter()
            .position(|n| *n == want)
            .ok_or_else(|| format!("the header has no column '{want}'"))?;
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(format!(
                "line {}: {} fields, want {}",
                i + 1,
                cells.len(),
                names.len()
            ));
        }
        let cell = |k: usize| -> Result<f64, String> {
            let (text, name) = (cells[at[k]], COLUMNS[k]);
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(format!("line {}: {name} '{text}' is not a number >= 0", i + 1)),
            }
        };
        let point = RunPoint {
            epoch: cell(0)? as u64,
            sparsity: cell(1)?,
            accuracy: cell(2)?,
            alive: cell(3)? as u64,
            capsules: cell(4)? as u64,
        };
        if point.sparsity > 1.0 || point.accuracy > 1.0 {
            return Err(format!("line {}: sparsity and accuracy must lie in 0..1", i + 1));
        }
        if point.alive > point.capsules {
            return Err(format!(
                "line {}: {} alive capsules of {}",
                i + 1,
                point.alive,
                point.capsules
            ));
        }
        rows.push(point);
    }
    if rows.is_empty() {
        return Err("no epochs below the header".into());
    }
    if rows.iter().all(|p| p.sparsity == 0.0) {
        return Err(
            "the run pruned nothing (sparsity 0 after every epoch): there is no curve \
against sparsity to draw"
                .into(),
        );
    }
    Ok(rows)
}

/// The chart's lines: test accuracy, K/N, and the epoch as a fraction of the last one (which
/// shows where along the sparsity axis the run spent its time).
pub fn run_series(points: &[RunPoint]) -> [Series; 3] {
    let last = points.iter().map(|p| p.epoch).max().unwrap_or(1).max(1) as f64;
    let line = |f: &dyn Fn(&RunPoint) -> f64| points.iter().map(|p| (p.sparsity, f(p))).collect();
    [
        Series {
            name: "test accuracy",
            points: line(&|p| p.accuracy),
            color: [31, 119, 180],
        },
        Series {
            name: "alive capsules K/N",
            points: line(&|p| p.alive as f64 / p.capsules.max(1) as f64),
            color: [214, 39, 40],
        },
        Series {
            name: "epoch / last epoch",
            points: line(&|p| p.epoch as f64 / last),
            color: [127, 127, 127],
        },
    ]
}

/// The default title: "PRUNING on the PRESET model, DATA" from the run's `config.json`, or a
/// plain one when that file is missing or says less.
fn default_title(dir: &Path) -> String {
    let config = read_text(&dir.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let text = |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_owned);
    let Some(config) = config else {
        return "pruning while training".into();
    };
    let pruning = match config.get("prune") {
        Some(serde_json::Value::Object(m)) => m.keys().next().map(|k| k.to_uppercase()),
        // older run folders stored the setting as text, e.g. "Lobster { lambda: 0.001, .. }":
        // its first word is the method
        Some(serde_json::Value::String(s)) => s
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .map(str::to_uppercase),
        _ => None,
    }
    .unwrap_or_else(|| "pruning".into());
    // a folder dataset is named by its last component, not its whole path
    let data = text(&config, "data").map(|d| {
        let p = Path::new(&d);
        p.file_name()
            .map_or(d.clone(), |n| n.to_string_lossy().into_owned())
    });
    match (text(&config, "preset"), data) {
        (Some(preset), Some(data)) => format!("{pruning} on the {preset} model, {data}"),
        _ => format!("{pruning} while training"),
    }
}

/// Draws `dir/run.svg` and `dir/run.png` from `dir/metrics.csv`; returns the SVG's path.
pub fn write_run_charts(dir: &Path, title: Option<String>) -> anyhow::Result<std::path::PathBuf> {
    let csv = dir.join("metrics.csv");
    let points = parse_metrics(&read_text(&csv)?).map_err(|reason| malformed(&csv, reason))?;
    let title = title.unwrap_or_else(|| default_title(dir));
    let series = run_series(&points);
    let chart = Chart {
        title: &title,
        x_label: "weight sparsity reached (fraction of weights)",
        y_label: "fraction",
        series: &series,
    };
    let svg = dir.join("run.svg");
    write_atomic(&svg, svg_chart(&chart)?.as_bytes())?;
    write_atomic(&dir.join("run.png"), &png_chart(&chart)?)?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,epoch_s,\
sparsity,sparsity_conv1,sparsity_primary,sparsity_digit,alive_capsules,capsules,alive_types
1,0.09,0.91,0.02,0.9834,1e-3,10.0,0.05,0.01,0.08,0.01,576,576,16
2,0.03,0.97,0.01,0.9901,1e-3,10.0,0.95,0.90,0.97,0.80,144,576,4
";

    #[test]
    fn rows_are_read_by_column_name() {
        let rows = parse_metrics(CSV).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            RunPoint {
                epoch: 2,
                sparsity: 0.95,
                accuracy: 0.9901,
                alive: 144,
                capsules: 576
            }
        );
        let series = run_series(&rows);
        assert_eq!(series[1].points, vec![(0.05, 1.0), (0.95, 0.25)]);
        assert_eq!(series[2].points, vec![(0.05, 0.5), (0.95, 1.0)]);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        assert_eq!(parse_metrics("").unwrap_err(), "empty file");
        assert_eq!(
            parse_metrics("epoch,sparsity\n1,0.5\n").unwrap_err(),
            "the header has no column 'test_accuracy'"
        );
        let bad = CSV.replace("0.9901", "nan");
        assert_eq!(
            parse_metrics(&bad).unwrap_err(),
            "line 3: test_accuracy 'nan' is not a number >= 0"
        );
        let short = CSV.replace(",576,4", ",576");
        assert_eq!(parse_metrics(&short).unwrap_err(), "line 3: 13 fields, want 14");
        let more = CSV.replace("144,576", "577,576");
        assert_eq!(
            parse_metrics(&more).unwrap_err(),
            "line 3: 577 alive capsules of 576"
        );
        let dense = CSV.replace(",0.05,", ",0,").replace(",0.95,", ",0,");
        assert!(
            parse_metrics(&dense)
                .unwrap_err()
                .starts_with("the run pruned nothing")
        );
        let header_only = CSV.lines().next().unwrap();
        assert_eq!(
            parse_metrics(header_only).unwrap_err(),
            "no epochs below the header"
        );
    }

    #[test]
    fn the_chart_is_drawn_from_a_run_folder() {
        let dir = std::env::temp_dir().join(format!("sparsecaps-run-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metrics.csv"), CSV).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"data":"mnist","preset":"small","prune":{"Lobster":{"lambda":0.0001}}}"#,
        )
        .unwrap();
        let svg_path = write_run_charts(&dir, None).unwrap();
        let svg = std::fs::read_to_string(svg_path).unwrap();
        assert!(svg.contains("LOBSTER on the small model, mnist"));
        let old_style = r#"{"data":"mnist","preset":"small","prune":"Lobster { lambda: 0.001 }"}"#;
        std::fs::write(dir.join("config.json"), old_style).unwrap();
        assert_eq!(default_title(&dir), "LOBSTER on the small model, mnist");
        let folder = old_style.replace("\"mnist\"", "\"../data/fashion-mnist\"");
        std::fs::write(dir.join("config.json"), folder).unwrap();
        assert_eq!(default_title(&dir), "LOBSTER on the small model, fashion-mnist");
        assert!(svg.contains("alive capsules K/N"));
        let png = std::fs::read(dir.join("run.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
