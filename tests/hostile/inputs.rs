//! Datasets, images, special files, output paths and numbers on the command line.

use std::path::{Path, PathBuf};

use super::files::{fifo, gzip, gzip_bomb, idx, idx_dir, png_claiming, png_digit, replace};
use super::runner::{Case, Expect};

use Expect::{Refuse, Succeed};

/// An edit of the files of an IDX folder.
type FolderEdit = Box<dyn FnOnce(&mut Vec<(String, Vec<u8>)>)>;

/// IDX dataset folders that lie.
pub fn dataset_cases(dir: &Path, model: &Path) -> Vec<Case> {
    const TI: &str = "train-images-idx3-ubyte";
    const TL: &str = "train-labels-idx1-ubyte";
    let folders: Vec<(&str, FolderEdit)> = vec![
        (
            "4096x4096 images",
            Box::new(|f| {
                let images = idx(0x803, &[1, 4096, 4096], &vec![0; 4096 * 4096]);
                replace(f, TI, images.clone());
                replace(f, "t10k-images-idx3-ubyte", images);
                replace(f, TL, idx(0x801, &[1], &[3]));
                replace(f, "t10k-labels-idx1-ubyte", idx(0x801, &[1], &[3]));
            }),
        ),
        (
            "labels file in place of images",
            Box::new(|f| replace(f, TI, idx(0x801, &[4], &[0, 1, 2, 3]))),
        ),
        (
            "colour images with 0 channels",
            Box::new(|f| replace(f, TI, idx(0x804, &[4, 28, 28, 0], &[]))),
        ),
        (
            "count x rows x cols beyond memory",
            Box::new(|f| replace(f, TI, idx(0x803, &[u32::MAX, 1024, 1024], &[]))),
        ),
        (
            "gzip bomb (header says 4 images, stream holds 200 MB)",
            Box::new(|f| replace(f, TI, gzip_bomb(&idx(0x803, &[4, 28, 28], &[]), 200 << 20))),
        ),
        (
            "truncated gzip",
            Box::new(|f| {
                let g = gzip(&idx(0x803, &[4, 28, 28], &[0; 4 * 784]));
                replace(f, TI, g[..g.len() / 2].to_vec())
            }),
        ),
        (
            "wrong magic",
            Box::new(|f| replace(f, TI, idx(0x0000_0d03, &[4, 28, 28], &[0; 4 * 784]))),
        ),
        (
            "labels beyond the classes",
            Box::new(|f| replace(f, TL, idx(0x801, &[4], &[0, 1, 200, 3]))),
        ),
        (
            "fewer labels than images",
            Box::new(|f| replace(f, TL, idx(0x801, &[3], &[0, 1, 2]))),
        ),
        (
            "zero rows",
            Box::new(|f| replace(f, TI, idx(0x803, &[4, 0, 28], &[]))),
        ),
        (
            "seven channels",
            Box::new(|f| replace(f, TI, idx(0x804, &[1, 28, 28, 7], &[0; 784 * 7]))),
        ),
        ("empty file", Box::new(|f| replace(f, TI, vec![]))),
        (
            "trailing bytes",
            Box::new(|f| replace(f, TL, idx(0x801, &[4], &[0, 1, 2, 3, 9, 9]))),
        ),
        (
            "train and test of different sizes",
            Box::new(|f| replace(f, TI, idx(0x803, &[4, 32, 32], &[0; 4 * 1024]))),
        ),
        (
            "no images at all",
            Box::new(|f| {
                replace(f, TI, idx(0x803, &[0, 28, 28], &[]));
                replace(f, TL, idx(0x801, &[0], &[]));
            }),
        ),
    ];
    let mut cases = Vec::new();
    for (i, (name, edit)) in folders.into_iter().enumerate() {
        let d = dir.join(format!("d{i}"));
        idx_dir(&d, edit);
        let out = dir.join(format!("run{i}"));
        if i % 2 == 0 {
            cases.push(Case::train("dataset", name, &d, &out));
        } else {
            cases.push(Case::new(
                "dataset",
                name,
                Refuse,
                &[&"eval", &"--model", &model, &"--data", &d, &"--device", &"cpu"],
            ));
        }
    }
    let fifo_dir = dir.join("fifo-data");
    idx_dir(&fifo_dir, |_| {});
    std::fs::remove_file(fifo_dir.join(TI)).unwrap();
    fifo(&fifo_dir.join(TI));
    cases.push(Case::new(
        "dataset",
        "a FIFO as the images file",
        Refuse,
        &[
            &"eval",
            &"--model",
            &model,
            &"--data",
            &fifo_dir,
            &"--device",
            &"cpu",
        ],
    ));
    cases.push(Case::new(
        "dataset",
        "a file as the folder",
        Refuse,
        &[
            &"eval",
            &"--model",
            &model,
            &"--data",
            &"/etc/hostname",
            &"--device",
            &"cpu",
        ],
    ));
    cases
}

/// Images, special files and output paths.
pub fn file_cases(dir: &Path, model: &Path) -> Vec<Case> {
    let write = |name: &str, bytes: Vec<u8>| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let inspect = |name: &str, image: &Path| {
        Case::new(
            "image",
            name,
            Refuse,
            &[&"inspect", &"--model", &model, &"--image", &image],
        )
    };
    let pipe = dir.join("pipe");
    fifo(&pipe);
    let looped = dir.join("loop.safetensors");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let mut cases = vec![
        inspect(
            "PNG claiming 100000x100000 pixels",
            &write("huge.png", png_claiming(100_000, 100_000)),
        ),
        inspect(
            "PNG claiming 60000x60000 pixels",
            &write("big.png", png_claiming(60_000, 60_000)),
        ),
        inspect("not an image", &write("text.png", b"hello".to_vec())),
        inspect("empty image file", &write("empty.png", vec![])),
        inspect("truncated PNG", &write("cut.png", png_digit()[..40].to_vec())),
        inspect("a FIFO as the image", &pipe),
        inspect("/dev/zero as the image", Path::new("/dev/zero")),
        inspect("a folder as the image", dir),
        Case::new(
            "special file",
            "a FIFO as the model",
            Refuse,
            &[&"eval", &"--model", &pipe, &"--device", &"cpu"],
        ),
        Case::new(
            "special file",
            "/dev/zero as the model",
            Refuse,
            &[
                &"export",
                &"--model",
                &"/dev/zero",
                &"--out",
                &dir.join("z.safetensors"),
            ],
        ),
        Case::new(
            "special file",
            "/dev/urandom as the model",
            Refuse,
            &[&"bench", &"--model", &"/dev/urandom", &"--device", &"cpu"],
        ),
        Case::new(
            "special file",
            "a folder as the model",
            Refuse,
            &[&"inspect", &"--model", &dir, &"--image", &pipe],
        ),
        Case::new(
            "special file",
            "a /proc file as the model",
            Refuse,
            &[&"eval", &"--model", &"/proc/self/status", &"--device", &"cpu"],
        ),
        Case::new(
            "special file",
            "a symlink loop as the model",
            Refuse,
            &[&"eval", &"--model", &looped, &"--device", &"cpu"],
        ),
        Case::new(
            "special file",
            "/dev/null as the dataset",
            Refuse,
            &[
                &"eval",
                &"--model",
                &model,
                &"--data",
                &"/dev/null",
                &"--device",
                &"cpu",
            ],
        ),
        inspect("a 1x1 PNG is fine", &write("one.png", one_pixel_png())).expecting(Succeed),
    ];
    let out_cases: Vec<(&str, PathBuf)> = vec![
        (
            "export into a missing folder",
            dir.join("missing/sub/x.safetensors"),
        ),
        ("export onto a folder", dir.to_path_buf()),
        (
            "export under a file",
            PathBuf::from("/etc/hostname/x.safetensors"),
        ),
        ("export into /proc", PathBuf::from("/proc/self/x.safetensors")),
    ];
    for (name, out) in out_cases {
        cases.push(Case::new(
            "output path",
            name,
            Refuse,
            &[&"export", &"--model", &model, &"--out", &out],
        ));
    }
    cases.push(Case::new(
        "output path",
        "prune into a missing folder",
        Refuse,
        &[
            &"prune",
            &"--model",
            &model,
            &"--sparsity",
            &"0.5",
            &"--limit-test",
            &"10",
            &"--device",
            &"cpu",
            &"--out",
            &dir.join("missing/p.safetensors"),
        ],
    ));
    // run and sweep folders are checked before the work, not after it
    let blocked = dir.join("blocked-run");
    std::fs::create_dir_all(blocked.join("model.safetensors")).unwrap();
    let blocked_resume = dir.join("blocked-resume");
    std::fs::create_dir_all(blocked_resume.join("resume/epoch-1.bpk")).unwrap();
    let blocked_sweep = dir.join("blocked-sweep");
    std::fs::create_dir_all(blocked_sweep.join("sweep.png")).unwrap();
    let train = |out: &Path| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = ["train", "--preset", "tiny", "--limit-train", "16"]
            .into_iter()
            .chain(["--limit-test", "8", "--device", "cpu", "--out"])
            .map(Into::into)
            .collect();
        a.push(out.into());
        a
    };
    for (name, args) in [
        (
            "train into a run folder whose model.safetensors is a folder",
            train(&blocked),
        ),
        ("train into a run folder that is a file", train(model)),
        (
            "train into a run folder whose first checkpoint name is a folder",
            train(&blocked_resume),
        ),
    ] {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
        cases.push(Case::new("output path", name, Refuse, &args).saying("cannot write here"));
    }
    cases.push(
        Case::sweep(
            "output path",
            "sweep into a folder whose sweep.png is a folder",
            model,
            None,
            &blocked_sweep,
        )
        .saying("sweep.png: cannot write here"),
    );
    cases.push(
        Case::new(
            "output path",
            "resume with a setting the run already has",
            Refuse,
            &[&"train", &"--resume", &blocked, &"--lr", &"0.5"],
        )
        .saying("cannot be used with '--lr"),
    );
    let no_epoch = dir.join("no-epoch-run");
    std::fs::create_dir_all(&no_epoch).unwrap();
    std::fs::copy(model, no_epoch.join("model.safetensors")).unwrap();
    cases.push(
        Case::new(
            "output path",
            "resume a folder whose model records no epoch",
            Refuse,
            &[&"train", &"--resume", &no_epoch],
        )
        .saying("records no finished epoch"),
    );
    cases
}

/// Numbers on the command line.
pub fn number_cases(dir: &Path, model: &Path) -> Vec<Case> {
    let out = dir.join("run");
    let train = |name: &str, flag: &str, value: &str| {
        let arg = format!("{flag}={value}");
        Case::new(
            "numbers",
            name,
            Refuse,
            &[
                &"train",
                &"--preset",
                &"tiny",
                &"--limit-train",
                &"32",
                &"--limit-test",
                &"16",
                &"--device",
                &"cpu",
                &arg,
                &"--out",
                &out,
            ],
        )
    };
    vec![
        train("learning rate NaN", "--lr", "NaN"),
        train("learning rate infinite", "--lr", "inf"),
        train("learning rate negative", "--lr", "-1"),
        train("lambda NaN", "--lambda", "NaN"),
        train("twt -inf", "--twt", "-inf"),
        train("batch 0", "--batch", "0"),
        train("epochs 0", "--epochs", "0"),
        train("epochs 2^64-1", "--epochs", "18446744073709551615").saying("more than 100000 epochs"),
        train("sparsity 1.5", "--target-sparsity", "1.5"),
        train("learning-rate decay 0", "--lr-decay", "0"),
        train("a decay with the cosine schedule", "--lr-decay", "0.9")
            .with_arg("--lr-schedule=cosine")
            .saying("--lr-schedule cosine falls to 0 on its own"),
        train("an unknown schedule", "--lr-schedule", "step").saying("possible values: exponential, cosine"),
        train("a schedule with the rem recipe", "--lr-schedule", "cosine")
            .with_arg("--recipe=rem")
            .saying("cannot be used with"),
        train("validation split with nothing to validate", "--validation", "5")
            .saying("--validation holds out images for --prune lobster or --patience"),
        // 10% of 9 images is none: --patience would never stop the run
        Case::new(
            "numbers",
            "patience with too few images to validate on",
            Refuse,
            &[
                &"train",
                &"--preset",
                &"tiny",
                &"--limit-train",
                &"9",
                &"--limit-test",
                &"16",
                &"--device",
                &"cpu",
                &"--patience",
                &"1",
                &"--out",
                &out,
            ],
        )
        .saying("need a validation split"),
        train("an empty dataset name", "--data", "").saying("give mnist, fashion-mnist, cifar10 or a folder"),
        train(
            "no decoder for an --init model",
            "--init",
            &model.display().to_string(),
        )
        .with_arg("--no-decoder")
        .saying("cannot be used with"),
        Case::new(
            "numbers",
            "sweep fine-tuning at learning rate 0",
            Refuse,
            &[&"sweep", &"--model", &model, &"--lr", &"0", &"--out", &out],
        )
        .saying("--lr must be a positive number"),
        Case::new(
            "numbers",
            "sweep fine-tuning at batch 0",
            Refuse,
            &[&"sweep", &"--model", &model, &"--batch", &"0", &"--out", &out],
        ),
        Case::new(
            "numbers",
            "sweep fine-tuning options without fine-tuning epochs",
            Refuse,
            &[&"sweep", &"--model", &model, &"--lr", &"1e-4", &"--out", &out],
        )
        .saying("runs only with --finetune-epochs"),
        Case::new(
            "numbers",
            "prune with an unknown augmentation",
            Refuse,
            &[
                &"prune",
                &"--model",
                &model,
                &"--sparsity",
                &"0.5",
                &"--augment",
                &"sideways",
                &"--out",
                &out,
            ],
        ),
        Case::new(
            "numbers",
            "a file as the dataset folder",
            Refuse,
            &[
                &"eval",
                &"--model",
                &model,
                &"--data",
                &model,
                &"--device",
                &"cpu",
            ],
        )
        .saying("a file, not a dataset folder"),
        Case::new(
            "numbers",
            "paper batch beyond memory",
            Refuse,
            &[
                &"bench",
                &"--preset",
                &"paper",
                &"--batch",
                &"4096",
                &"--device",
                &"cpu",
            ],
        ),
        Case::new(
            "numbers",
            "eval batch beyond memory",
            Refuse,
            &[
                &"eval",
                &"--model",
                &model,
                &"--batch",
                &"65536",
                &"--device",
                &"cpu",
            ],
        ),
        Case::new(
            "numbers",
            "prune learning rate NaN",
            Refuse,
            &[
                &"prune",
                &"--model",
                &model,
                &"--sparsity",
                &"0.5",
                &"--lr",
                &"NaN",
                &"--out",
                &dir.join("p.safetensors"),
            ],
        ),
        Case::new(
            "numbers",
            "sparsities with NaN",
            Refuse,
            &[
                &"sweep",
                &"--model",
                &model,
                &"--sparsities",
                &"0,NaN",
                &"--out",
                &dir.join("sw"),
            ],
        ),
        Case::sweep(
            "numbers",
            "a billion EagleEye candidates",
            model,
            None,
            &dir.join("sw"),
        )
        .with_arg("--candidates")
        .with_arg("1000000000")
        .saying("more than 1,000"),
        Case::sweep(
            "numbers",
            "a billion timed repetitions",
            model,
            None,
            &dir.join("sw"),
        )
        .with_arg("--repeat")
        .with_arg("1000000000")
        .saying("more than 1,000"),
    ]
}

/// A valid 1x1 grey PNG.
fn one_pixel_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(1, 1)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}
