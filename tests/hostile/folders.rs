//! Image-folder datasets and CIFAR-10 binary batches that lie, given to `train`.

use std::path::{Path, PathBuf};

use super::files::{fifo, png_claiming, png_digit};
use super::runner::{Case, Expect};

/// An edit of a good image folder (train/{a,b}, test/{a,b}, two 28x28 PNGs each).
type Edit = Box<dyn FnOnce(&Path)>;

fn good_folder(root: &Path) {
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..2 {
                std::fs::write(d.join(format!("{i}.png")), png_digit()).unwrap();
            }
        }
    }
}

fn write(path: PathBuf, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn image_folder_edits() -> Vec<(&'static str, Edit)> {
    vec![
        (
            "images of different sizes",
            Box::new(|r| {
                let img = image::GrayImage::new(27, 28);
                img.save(r.join("train/b/2.png")).unwrap();
            }),
        ),
        (
            "a text file among the images",
            Box::new(|r| write(r.join("train/a/notes.txt"), b"hello")),
        ),
        (
            "a .jpg that is not an image",
            Box::new(|r| write(r.join("test/b/x.jpg"), b"\xff\xd8 not a jpeg")),
        ),
        (
            "an empty image file",
            Box::new(|r| write(r.join("train/a/empty.png"), b"")),
        ),
        (
            "a PNG claiming 100000x100000 pixels",
            Box::new(|r| write(r.join("train/b/huge.png"), &png_claiming(100_000, 100_000))),
        ),
        (
            "a FIFO named like an image",
            Box::new(|r| fifo(&r.join("train/a/pipe.png"))),
        ),
        (
            "an empty class folder",
            Box::new(|r| std::fs::create_dir_all(r.join("train/c")).unwrap()),
        ),
        (
            "a test class missing from train",
            Box::new(|r| {
                std::fs::create_dir_all(r.join("test/z")).unwrap();
                write(r.join("test/z/0.png"), &png_digit());
            }),
        ),
        (
            "no test folder",
            Box::new(|r| std::fs::remove_dir_all(r.join("test")).unwrap()),
        ),
        (
            "no class folders in train",
            Box::new(|r| {
                std::fs::remove_dir_all(r.join("train")).unwrap();
                std::fs::create_dir_all(r.join("train")).unwrap();
            }),
        ),
        (
            "300 class folders",
            Box::new(|r| {
                for i in 0..300 {
                    let d = r.join(format!("train/k{i:03}"));
                    std::fs::create_dir_all(&d).unwrap();
                    write(d.join("0.png"), &png_digit());
                }
            }),
        ),
        (
            "a looping symlink as a class folder's image",
            Box::new(|r| {
                let p = r.join("train/a/loop.png");
                std::os::unix::fs::symlink(&p, &p).unwrap();
            }),
        ),
    ]
}

/// CIFAR-10 binary folders that lie (each starts from five 2-record batches and a
/// 1-record test batch).
fn cifar_edits() -> Vec<(&'static str, Edit)> {
    vec![
        (
            "a CIFAR-10 batch cut short",
            Box::new(|d| write(d.join("data_batch_4.bin"), &[0; 3000])),
        ),
        (
            "a CIFAR-10 label beyond the classes",
            Box::new(|d| {
                let mut rec = vec![0u8; 3073];
                rec[0] = 77;
                write(d.join("test_batch.bin"), &rec);
            }),
        ),
        (
            "a CIFAR-10 batch missing",
            Box::new(|d| std::fs::remove_file(d.join("data_batch_5.bin")).unwrap()),
        ),
        (
            "an empty CIFAR-10 test batch",
            Box::new(|d| write(d.join("test_batch.bin"), b"")),
        ),
    ]
}

fn cifar_dir(d: &Path) {
    std::fs::create_dir_all(d).unwrap();
    for b in 1..=5 {
        write(d.join(format!("data_batch_{b}.bin")), &[1u8; 2 * 3073]);
    }
    write(d.join("test_batch.bin"), &[2u8; 3073]);
}

fn train(name: &str, data: &Path, out: &Path) -> Case {
    Case::train("image folder", name, data, out)
}

/// Every bad image folder and CIFAR-10 binary folder, as `train` cases.
pub fn folder_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, (name, edit)) in image_folder_edits().into_iter().enumerate() {
        let d = dir.join(format!("folder{i}"));
        good_folder(&d);
        edit(&d);
        cases.push(train(name, &d, &dir.join(format!("run-folder{i}"))));
    }
    for (i, (name, edit)) in cifar_edits().into_iter().enumerate() {
        let d = dir.join(format!("cifar{i}"));
        cifar_dir(&d);
        edit(&d);
        cases.push(train(name, &d, &dir.join(format!("run-cifar{i}"))));
    }
    let good = dir.join("good-folder");
    good_folder(&good);
    cases.push(train("a good image folder", &good, &dir.join("run-good")).expecting(Expect::Succeed));
    let empty = dir.join("not-a-dataset");
    std::fs::create_dir_all(&empty).unwrap();
    cases.push(train(
        "a folder holding no dataset",
        &empty,
        &dir.join("run-empty"),
    ));
    cases
}
