//! The main window as an image, rendered by egui_kittest through wgpu (lavapipe in CI) and
//! compared with `tests/snapshots/main-window.png`. After an intended change of the UI,
//! refresh it with `UPDATE_SNAPSHOTS=1 cargo test --release --test snapshot`.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sparsecaps::app::AppState;

#[test]
fn the_main_window_looks_as_it_did() {
    // no adapter, no image: a machine without Vulkan skips this test unless CI asks for it
    if let Err(e) = sparsecaps::device::select(sparsecaps::device::DeviceChoice::Wgpu) {
        assert!(
            std::env::var_os("SPARSECAPS_REQUIRE_WGPU").is_none(),
            "wgpu required but unavailable: {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    // the form fields are named through `labelled_by`, which kittest's accessibility check
    // does not follow
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .with_accessibility_check(false)
        .wgpu()
        .build_ui_state(|ui, s: &mut AppState| s.ui(ui), AppState::new(None));
    let started = Instant::now();
    while h.query_all_by_label_contains("K/N: 576/576").next().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the built-in model did not load"
        );
        std::thread::sleep(Duration::from_millis(30));
        h.step();
    }
    // the path field holds the temporary folder, which differs between machines
    h.state_mut().pruning.model_path = "/tmp/sparsecaps-export.safetensors".into();
    h.run_steps(3);
    h.snapshot("main-window");
}
