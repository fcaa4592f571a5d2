//! Runs the binary on one hostile case under a memory cap and a time limit and classifies
//! what happened.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address-space cap of each run (KiB for `ulimit -v`): 6 GiB.
pub const MEMORY_CAP_KB: u64 = 6 * 1024 * 1024;
/// Wall-clock limit of each run.
pub const TIME_LIMIT: Duration = Duration::from_secs(90);

/// What a case must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exit code 2 with exactly one line on stderr.
    Refuse,
    /// Exit code 0 (the input is odd but valid).
    Succeed,
}

/// One hostile input tried against the CLI.
pub struct Case {
    /// The kind of input (for the summary).
    pub kind: &'static str,
    /// What it is.
    pub name: String,
    /// The command line after the binary.
    pub args: Vec<OsString>,
    /// What it must do.
    pub expect: Expect,
    /// Text a refusal's line must contain (None: any line).
    pub saying: Option<&'static str>,
}

impl Case {
    /// `sweep --model MODEL [--baseline BASE] --sparsities 0 --limit-test 8 --device cpu
    /// --out OUT`, refused.
    pub fn sweep(
        kind: &'static str,
        name: &str,
        model: &std::path::Path,
        baseline: Option<&std::path::Path>,
        out: &std::path::Path,
    ) -> Self {
        let mut args: Vec<OsString> = vec!["sweep".into(), "--model".into(), model.into()];
        if let Some(b) = baseline {
            args.extend(["--baseline".into(), b.into()]);
        }
        args.extend(
            [
                "--sparsities",
                "0",
                "--limit-test",
                "8",
                "--device",
                "cpu",
                "--out",
            ]
            .map(OsString::from),
        );
        args.push(out.into());
        Self {
            kind,
            name: name.to_string(),
            args,
            expect: Expect::Refuse,
            saying: None,
        }
    }

    /// The same case with one more argument at the end.
    pub fn with_arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// A case whose arguments are strings or paths.
    pub fn new(kind: &'static str, name: &str, expect: Expect, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Self {
        Self {
            kind,
            name: name.to_string(),
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            expect,
            saying: None,
        }
    }
}

impl Case {
    /// `train --data DATA --preset tiny --epochs 1 --device cpu --out OUT`, refused.
    pub fn train(kind: &'static str, name: &str, data: &std::path::Path, out: &std::path::Path) -> Self {
        Self::new(
            kind,
            name,
            Expect::Refuse,
            &[
                &"train",
                &"--data",
                &data,
                &"--preset",
                &"tiny",
                &"--epochs",
                &"1",
                &"--device",
                &"cpu",
                &"--out",
                &out,
            ],
        )
    }

    /// The same case, refused with a line that contains `text`.
    pub fn saying(mut self, text: &'static str) -> Self {
        self.saying = Some(text);
        self
    }

    /// The same case with another expectation.
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// The binary under test: `$SPARSECAPS_BIN` (to try another build) or this package's.
pub fn binary() -> PathBuf {
    std::env::var_os("SPARSECAPS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sparsecaps")))
}

/// How a run ended, as a verdict: `Ok(first stderr line)` when it did what the case
/// expects.
pub fn run(case: &Case) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_CAP_KB} && exec \"$0\" \"$@\""))
        .arg(binary())
        .args(&case.args)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // drain the pipes on threads so a chatty child cannot block on a full pipe
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hang (killed after {} s)", TIME_LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _stdout = out_t.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let first = lines
        .first()
        .copied()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect::<String>();
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return Err(format!("runaway allocation: {first}"));
    }
    if stderr.contains("panicked") {
        let at = lines.iter().find(|l| l.contains("panicked")).unwrap_or(&"");
        return Err(format!("panic: {}", at.chars().take(200).collect::<String>()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Err(format!("killed by signal {sig}: {first}"));
        }
    }
    match (case.expect, status.code()) {
        (Expect::Refuse, Some(2)) if lines.len() == 1 => match case.saying {
            Some(text) if !lines[0].contains(text) => Err(format!("refused, but not for '{text}': {first}")),
            _ => Ok(first),
        },
        (Expect::Refuse, Some(2)) => Err(format!("{} lines on stderr: {}", lines.len(), lines.join(" / "))),
        (Expect::Refuse, Some(0)) => Err("silent success (exit 0)".into()),
        (Expect::Succeed, Some(0)) => Ok("(exit 0)".into()),
        (_, code) => Err(format!("exit code {code:?}: {first}")),
    }
}

/// Runs every case, prints one line per case, and returns the failures.
pub fn run_all(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let start = Instant::now();
        let verdict = run(c);
        let secs = start.elapsed().as_secs_f64();
        match &verdict {
            Ok(line) => println!("ok    [{}] {} ({secs:.1} s): {line}", c.kind, c.name),
            Err(why) => {
                println!("FAIL  [{}] {}: {why} ({secs:.1} s)", c.kind, c.name);
                failures.push(format!("[{}] {}: {why}", c.kind, c.name));
            }
        }
    }
    println!("{} cases, {} failed", cases.len(), failures.len());
    failures
}
