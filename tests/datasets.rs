//! Image-folder datasets and the CIFAR-10 binary release, read from folders generated here,
//! and CIFAR-10 from `../shared/datasets/cifar-10` when it is there.

use std::path::Path;

use sparsecaps::data::{DataError, DataSource, Dataset};
use sparsecaps::device::DeviceChoice;
use sparsecaps::model::Preset;
use sparsecaps::train::{Command, Event, TrainRequest, Trainer};

fn png_grey(path: &Path, w: u32, h: u32, v: u8) {
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

fn png_rgb(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

fn jpeg_rgb(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

/// train/{a: 2 grey PNGs, b: 2 colour JPEGs, c: 1 colour PNG}, test/{a: grey, c: colour};
/// every image 6 wide and 5 high.
fn mixed_folder(root: &Path) {
    for d in ["train/a", "train/b", "train/c", "test/a", "test/c"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    png_grey(&root.join("train/a/0.png"), 6, 5, 10);
    png_grey(&root.join("train/a/1.png"), 6, 5, 20);
    jpeg_rgb(&root.join("train/b/0.jpg"), 6, 5, [0, 0, 255]);
    jpeg_rgb(&root.join("train/b/1.JPEG"), 6, 5, [0, 255, 0]);
    png_rgb(&root.join("train/c/0.png"), 6, 5, [200, 10, 30]);
    png_grey(&root.join("test/a/x.png"), 6, 5, 99);
    png_rgb(&root.join("test/c/y.png"), 6, 5, [1, 2, 3]);
    // hidden files are not part of the dataset
    std::fs::write(root.join("train/a/.DS_Store"), b"junk").unwrap();
}

fn load(dir: &Path) -> Result<Dataset, DataError> {
    Dataset::load(&DataSource::Dir(dir.into()))
}

#[test]
fn an_image_folder_of_png_and_jpeg_grey_and_colour_loads_class_by_class() {
    let dir = tempfile::tempdir().unwrap();
    mixed_folder(dir.path());
    let d = load(dir.path()).unwrap();
    assert_eq!(d.classes, ["a", "b", "c"]);
    let t = &d.train;
    assert_eq!((t.channels, t.height, t.width), (3, 5, 6));
    // first file of every class, then the second of every class
    assert_eq!(t.labels, [0, 1, 2, 0, 1]);
    let plane = 30;
    let img = |i: usize| &t.pixels[i * 3 * plane..(i + 1) * 3 * plane];
    // a grey image is repeated over red, green and blue
    assert!(img(0).iter().all(|&p| p == 10), "{:?}", &img(0)[..4]);
    // a lossless colour image, channel-first
    assert_eq!((img(2)[0], img(2)[plane], img(2)[2 * plane]), (200, 10, 30));
    // a JPEG is close to its colour
    assert!(img(1)[2 * plane] > 240 && img(1)[0] < 15, "{:?}", img(1)[0]);
    assert_eq!(d.test.labels, [0, 2]);
    assert_eq!(d.test.channels, 3);

    let limited =
        Dataset::load_with(&DataSource::Dir(dir.path().into()), (Some(4), Some(1)), &|_| {}).unwrap();
    assert_eq!(limited.train.labels, [0, 1, 2, 0]);
    assert_eq!(limited.train.pixels.len(), 4 * 3 * plane);
    assert_eq!(limited.test.len(), 1);
}

#[test]
fn an_all_grey_image_folder_has_one_channel_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    for (split, class, n) in [("train", "x", 3), ("train", "y", 2), ("test", "y", 1)] {
        let d = dir.path().join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            png_grey(&d.join(format!("{i}.png")), 4, 4, 50 + i as u8);
        }
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let d = Dataset::load_with(&DataSource::Dir(dir.path().into()), (None, None), &|p| {
        seen.lock().unwrap().push(p)
    })
    .unwrap();
    assert_eq!((d.train.channels, d.train.len(), d.test.len()), (1, 5, 1));
    assert_eq!(d.train.labels, [0, 1, 0, 1, 0]);
    assert_eq!(d.train.pixels[0], 50);
    assert_eq!(d.test.labels, [1]);
    let seen = seen.into_inner().unwrap();
    assert!(seen.iter().all(|p| p.total == 6 && p.done <= 6), "{seen:?}");
    assert!(seen.iter().any(|p| p.done == 6), "{seen:?}");
}

#[test]
fn decoding_an_image_folder_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    for (split, n) in [("train", 40), ("test", 5)] {
        let d = dir.path().join(split).join("a");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            png_grey(&d.join(format!("{i}.png")), 4, 4, i as u8);
        }
    }
    let source = DataSource::Dir(dir.path().into());
    // asked before every file: a stop after ten answers ends it before the 45 files
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let go_on = || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 10;
    let err = Dataset::load_until(&source, (None, None), &|_| {}, &go_on).unwrap_err();
    assert_eq!(err.to_string(), "loading was cancelled");
    // each decoder thread (one per core) asks once more, and the loader once at the end
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        asked.into_inner() <= 11 + threads,
        "decoding went on after the stop"
    );
    let d = Dataset::load_until(&source, (None, None), &|_| {}, &|| true).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (40, 5));
}

/// Builds a dataset in a fresh folder with `build` (which returns the folder to spoil),
/// applies `edit` there, and checks that loading the fresh folder fails with one line
/// holding `expected`.
fn assert_refused(name: &str, build: fn(&Path) -> std::path::PathBuf, edit: fn(&Path), expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    edit(&build(dir.path()));
    let err = load(dir.path()).expect_err(name).to_string();
    assert!(err.contains(expected), "{name}: {err}");
    assert!(!err.contains('\n'), "{name}: one line: {err}");
}

/// Each bad image folder, with a piece of the message it must give.
#[test]
fn bad_image_folders_are_refused_with_a_clear_error() {
    type Edit = fn(&Path);
    let cases: [(&str, Edit, &str); 7] = [
        (
            "images of different sizes",
            |r| png_rgb(&r.join("train/c/1.png"), 7, 5, [0, 0, 0]),
            "7x5 pixels",
        ),
        (
            "a file that is not an image",
            |r| std::fs::write(r.join("train/b/readme.txt"), b"hi").unwrap(),
            "not an image",
        ),
        (
            "a .png that does not decode",
            |r| std::fs::write(r.join("train/b/2.png"), b"not a png").unwrap(),
            "cannot decode",
        ),
        (
            "an empty class folder",
            |r| std::fs::create_dir_all(r.join("train/d")).unwrap(),
            "empty class folder",
        ),
        (
            "a test class missing from train",
            |r| {
                std::fs::create_dir_all(r.join("test/zebra")).unwrap();
                png_grey(&r.join("test/zebra/0.png"), 6, 5, 1);
            },
            "'zebra' is not among train/'s classes",
        ),
        (
            "no test folder",
            |r| std::fs::remove_dir_all(r.join("test")).unwrap(),
            "no test/ folder",
        ),
        (
            "no train folder",
            |r| std::fs::remove_dir_all(r.join("train")).unwrap(),
            "no train/ folder",
        ),
    ];
    for (name, edit, expected) in cases {
        let build = |d: &Path| {
            mixed_folder(d);
            d.to_path_buf()
        };
        assert_refused(name, build, edit, expected);
    }
}

/// Records of the CIFAR-10 binary format: a label byte, then 1,024 red, green and blue bytes.
fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        for c in 0..3u8 {
            out.extend(std::iter::repeat_n(i as u8 * 10 + c, 1024));
        }
    }
    out
}

fn cifar_bin_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for b in 1..=5u8 {
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), cifar_records(&[b, 9])).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_records(&[3, 1, 4])).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    dir
}

#[test]
fn the_cifar10_binary_release_loads_from_its_folder_or_the_one_above() {
    let dir = tempfile::tempdir().unwrap();
    let batches = cifar_bin_dir(dir.path());
    for root in [dir.path(), batches.as_path()] {
        let d = load(root).unwrap();
        assert_eq!(d.classes.len(), 10);
        assert_eq!(d.classes[9], "truck");
        assert_eq!(d.train.labels, [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(d.test.labels, [3, 1, 4]);
        assert_eq!((d.train.channels, d.train.height, d.train.width), (3, 32, 32));
        // record 1 of the test batch: red 10, green 11, blue 12
        let img = &d.test.pixels[3072..6144];
        assert_eq!((img[0], img[1024], img[2048]), (10, 11, 12));
    }
    let limited =
        Dataset::load_with(&DataSource::Dir(dir.path().into()), (Some(3), Some(2)), &|_| {}).unwrap();
    assert_eq!(
        (limited.train.labels.as_slice(), limited.test.len()),
        (&[1, 9, 2][..], 2)
    );
}

#[test]
fn bad_cifar10_binary_files_are_refused_with_a_clear_error() {
    type Edit = fn(&Path);
    let cases: [(&str, Edit, &str); 3] = [
        (
            "a batch cut short",
            |d| std::fs::write(d.join("data_batch_2.bin"), &cifar_records(&[1])[..3000]).unwrap(),
            "is not a positive multiple",
        ),
        (
            "a label beyond the classes",
            |d| std::fs::write(d.join("test_batch.bin"), cifar_records(&[12])).unwrap(),
            "label 12",
        ),
        (
            "a missing batch",
            |d| std::fs::remove_file(d.join("data_batch_3.bin")).unwrap(),
            "data_batch_3.bin: no such file",
        ),
    ];
    for (name, edit, expected) in cases {
        assert_refused(name, cifar_bin_dir, edit, expected);
    }
}

#[test]
fn cifar10_by_name_reads_the_shared_jpeg_folders() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/cifar-10");
    if !shared.is_dir() {
        eprintln!("skipped: {} is not there", shared.display());
        return;
    }
    // SAFETY: no other test of this binary reads or writes this variable
    unsafe { std::env::set_var("SPARSECAPS_CIFAR10", &shared) };
    let d = Dataset::load_with(&DataSource::Cifar10, (Some(1000), Some(100)), &|_| {}).unwrap();
    assert_eq!(d.name, "cifar10");
    assert_eq!(d.classes[0], "airplane");
    assert_eq!((d.train.len(), d.test.len()), (1000, 100));
    assert_eq!((d.train.channels, d.train.height, d.train.width), (3, 32, 32));
    // class by class: 100 of each in the first 1,000
    for class in 0..10u8 {
        assert_eq!(d.train.labels.iter().filter(|&&l| l == class).count(), 100);
    }
    let (mean, std) = d.train.channel_stats();
    // CIFAR-10's well-known channel means are about 0.49, 0.48, 0.45
    assert!(mean.iter().all(|m| (0.4..0.55).contains(m)), "{mean:?}");
    assert!(std.iter().all(|s| (0.2..0.3).contains(s)), "{std:?}");
}

#[test]
fn an_image_folder_of_twelve_classes_trains_a_twelve_class_model() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        for c in 0..12u8 {
            let folder = dir.path().join(split).join(format!("class-{c:02}"));
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..2u8 {
                png_grey(&folder.join(format!("{i}.png")), 28, 28, c * 20 + i);
            }
        }
    }
    let run = dir.path().join("run");
    let trainer = Trainer::spawn(None).unwrap();
    let req = TrainRequest {
        data: DataSource::Dir(dir.path().into()),
        preset: Preset::Tiny,
        epochs: 1,
        batch: 8,
        device: DeviceChoice::Cpu,
        out_dir: Some(run.clone()),
        ..TrainRequest::default()
    };
    trainer.send(Command::Start(Box::new(req))).unwrap();
    let mut last = None;
    while let Some(e) = trainer.recv_event() {
        let end = matches!(e, Event::Finished { .. } | Event::Failed(_));
        last = Some(e);
        if end {
            break;
        }
    }
    assert!(
        matches!(last, Some(Event::Finished { stopped: false, .. })),
        "{last:?}"
    );
    let file = run.join("model.safetensors");
    let (model, info) = sparsecaps::export::load_model(&file, &burn::prelude::Device::flex()).unwrap();
    assert_eq!(model.config.classes, 12);
    assert_eq!(info.classes.len(), 12);
    assert_eq!(info.classes[11], "class-11");
}
