//! The run folder: `metrics.csv`, `config.json` and checkpoints.

use std::path::Path;

use serde::Serialize;

use super::messages::{EpochMetrics, TrainRequest};
use crate::export::{TensorFileError, write_atomic, write_json_atomic};
use crate::model::CapsNetConfig;

/// Header of `metrics.csv`.
pub const CSV_HEADER: &str = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,epoch_s,\
sparsity,sparsity_conv1,sparsity_primary,sparsity_digit,alive_capsules,capsules,alive_types";

/// Renders the metrics of all epochs so far as CSV. An epoch without a kept training step
/// leaves its two training cells empty.
pub fn metrics_csv(rows: &[EpochMetrics]) -> String {
    let cell = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.6}"));
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for m in rows {
        let [s1, s2, s3] = m.layer_sparsity;
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.4e},{:.3},{:.6},{s1:.6},{s2:.6},{s3:.6},{},{},{}\n",
            m.epoch,
            cell(m.train_loss),
            cell(m.train_accuracy),
            m.test_loss,
            m.test_accuracy,
            m.lr,
            m.epoch_s,
            m.sparsity,
            m.alive_capsules,
            m.capsules,
            m.alive_types
        ));
    }
    s
}

/// Writes `metrics.csv` atomically.
pub fn write_metrics(dir: &Path, rows: &[EpochMetrics]) -> Result<(), TensorFileError> {
    write_atomic(&dir.join("metrics.csv"), metrics_csv(rows).as_bytes())
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(flatten)]
    request: &'a TrainRequest,
    /// The device the run used (a name, e.g. `cpu (2 threads)`).
    device_used: &'a str,
    model: &'a CapsNetConfig,
}

/// Writes `config.json` (the run's settings, the device it ran on and the model config)
/// atomically.
pub fn write_run_config(
    dir: &Path,
    req: &TrainRequest,
    model: &CapsNetConfig,
    device: &str,
) -> Result<(), TensorFileError> {
    let cfg = RunConfig {
        request: req,
        device_used: device,
        model,
    };
    write_json_atomic(&dir.join("config.json"), &cfg, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_metrics_of_older_resume_records_still_read() {
        // before 2026-11-29 the training loss and accuracy were plain numbers; now `null`
        // stands for an epoch without a kept step
        let row = |train: &str| {
            format!(
                r#"{{"epoch":3,"train_loss":{train},"train_accuracy":{train},"test_loss":0.4,"test_accuracy":0.9,"lr":0.001,"epoch_s":2.0,"sparsity":0.5,"layer_sparsity":[0.1,0.2,0.3],"alive_capsules":1,"capsules":2,"alive_types":1,"alive":[true,false]}}"#
            )
        };
        let old: EpochMetrics = serde_json::from_str(&row("0.25")).unwrap();
        assert_eq!((old.train_loss, old.train_accuracy), (Some(0.25), Some(0.25)));
        let none: EpochMetrics = serde_json::from_str(&row("null")).unwrap();
        assert_eq!((none.train_loss, none.train_accuracy), (None, None));
        let again: EpochMetrics = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(again, none);
    }

    #[test]
    fn csv_has_one_row_per_epoch() {
        let m = EpochMetrics {
            epoch: 1,
            train_loss: Some(0.5),
            train_accuracy: Some(0.8),
            test_loss: 0.4,
            test_accuracy: 0.9,
            lr: 1e-3,
            epoch_s: 2.0,
            sparsity: 0.5,
            layer_sparsity: [0.1, 0.2, 0.3],
            alive_capsules: 10,
            capsules: 12,
            alive_types: 2,
            alive: vec![true; 12],
        };
        let rolled_back = EpochMetrics {
            epoch: 3,
            train_loss: None,
            train_accuracy: None,
            ..m.clone()
        };
        let csv = metrics_csv(&[m.clone(), EpochMetrics { epoch: 2, ..m }, rolled_back]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[3].starts_with("3,,,0.400000,0.900000,"), "{}", lines[3]);
        assert_eq!(lines[0].split(',').count(), lines[3].split(',').count());
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[2].starts_with("2,0.500000,0.800000,0.400000,0.900000,"));
        assert!(
            lines[2].ends_with(",0.500000,0.100000,0.200000,0.300000,10,12,2"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[0].split(',').count(), lines[2].split(',').count());
    }
}
