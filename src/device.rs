//! The one place that chooses the compute device: wgpu when a usable adapter is found,
//! the CPU (`flex`) device otherwise, with the reason reported to the user.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use burn::tensor::wgpu::WgpuBackend;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// wgpu on a hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU (`flex` backend, multi-threaded).
    Cpu,
    /// wgpu on whatever adapter is found (a software adapter too).
    Wgpu,
}

serde_as_text!(DeviceChoice);

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        })
    }
}

/// An unknown device name.
#[derive(Debug, thiserror::Error)]
#[error("unknown device '{0}' (expected auto, cpu or wgpu)")]
pub struct UnknownDevice(pub String);

impl FromStr for DeviceChoice {
    type Err = UnknownDevice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            _ => Err(UnknownDevice(s.to_string())),
        }
    }
}

/// Which kind of device was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKindUsed {
    /// The CPU `flex` backend.
    Cpu,
    /// burn's wgpu backend.
    Wgpu,
}

/// The chosen device and why.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The burn device (without autodiff).
    pub device: Device,
    /// CPU or wgpu.
    pub kind: DeviceKindUsed,
    /// Short name, e.g. `cpu` or `wgpu (NVIDIA H100, Vulkan)`.
    pub name: String,
    /// Why this device was chosen.
    pub reason: String,
}

impl fmt::Display for SelectedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.reason)
    }
}

/// wgpu cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("wgpu is not available: {0}")]
pub struct WgpuUnavailable(pub String);

#[derive(Clone)]
struct Adapter {
    device: Device,
    name: String,
    software: bool,
    /// The largest buffer the device may allocate and bind to a shader, bytes.
    max_buffer_bytes: u64,
}

fn cpu_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The CPU device.
pub fn cpu(reason: impl Into<String>) -> SelectedDevice {
    SelectedDevice {
        device: Device::flex(),
        kind: DeviceKindUsed::Cpu,
        name: format!("cpu ({} threads)", cpu_threads()),
        reason: reason.into(),
    }
}

/// The result of the one wgpu probe of this process, once made.
static PROBE: std::sync::OnceLock<Result<Adapter, WgpuUnavailable>> = std::sync::OnceLock::new();

/// The wgpu adapter, probed once per process: burn's wgpu runtime can be initialised only
/// once, so a second probe (a second training run in the app) would fail.
fn probe_wgpu() -> Result<Adapter, WgpuUnavailable> {
    PROBE.get_or_init(probe_wgpu_once).clone()
}

/// Initialises burn's wgpu runtime on a Vulkan (or, on macOS, Metal) adapter and checks
/// that it computes a reduction (Mesa's GL adapter cannot).
fn probe_wgpu_once() -> Result<Adapter, WgpuUnavailable> {
    let api = if cfg!(target_os = "macos") {
        WgpuBackend::Auto
    } else {
        WgpuBackend::Vulkan
    };
    let result = std::panic::catch_unwind(|| -> Result<Adapter, String> {
        let (device, setup) = Device::wgpu_options()
            .graphics_api(api)
            .init_with_setup()
            .map_err(|e| e.to_string())?;
        let info = setup.adapter.get_info();
        let probe = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device)
            .sum()
            .into_scalar::<f32>();
        if (probe - 6.0).abs() > 1e-4 {
            return Err(format!("adapter {} computed a wrong sum ({probe})", info.name));
        }
        let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
        let limits = setup.device.limits();
        Ok(Adapter {
            device,
            name: format!("{} ({:?})", info.name, info.backend),
            software,
            max_buffer_bytes: limits.max_buffer_size.min(limits.max_storage_buffer_binding_size),
        })
    });
    match result {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(WgpuUnavailable(e)),
        Err(_) => Err(WgpuUnavailable("the wgpu runtime panicked while starting".into())),
    }
}

/// The largest buffer, in bytes, that `device` may hold in one piece: the limit of the wgpu
/// device this process started, `None` for the CPU (bounded by memory only). Layers that
/// build large intermediate tensors split their batches under it.
pub fn max_buffer_bytes(device: &Device) -> Option<u64> {
    match PROBE.get() {
        // device equality ignores autodiff
        Some(Ok(a)) if a.device == *device => Some(a.max_buffer_bytes),
        _ => None,
    }
}

/// How many items of `bytes_per_item` bytes one buffer of `limit` bytes holds (0 when one
/// item is over it).
pub fn items_per_buffer(limit: u64, bytes_per_item: u64) -> usize {
    usize::try_from(limit / bytes_per_item.max(1)).unwrap_or(usize::MAX)
}

/// Chooses the device for `choice`.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, WgpuUnavailable> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu("requested with --device cpu")),
        DeviceChoice::Wgpu => {
            let a = probe_wgpu()?;
            Ok(SelectedDevice {
                device: a.device,
                kind: DeviceKindUsed::Wgpu,
                name: format!("wgpu {}", a.name),
                reason: "requested with --device wgpu".into(),
            })
        }
        DeviceChoice::Auto => Ok(match probe_wgpu() {
            Ok(a) if !a.software => SelectedDevice {
                device: a.device,
                kind: DeviceKindUsed::Wgpu,
                name: format!("wgpu {}", a.name),
                reason: "a GPU adapter was found".into(),
            },
            Ok(a) => cpu(format!(
                "only a software GPU adapter was found ({}); the CPU backend is faster",
                a.name
            )),
            Err(e) => cpu(format!("no usable GPU adapter: {}", e.0)),
        }),
    }
}

/// Environment variables the binary sets for itself at start, before any thread exists,
/// given how the variables it inherited read (`get`); a variable the user set is never
/// overridden.
/// - `BURN_DEVICE=flex`: burn puts tensors it creates without a device on its default
///   device, which is wgpu whenever wgpu is compiled in. Resuming a run restores Adam's
///   state that way, so a CPU run would otherwise start the GPU runtime (and its Vulkan
///   driver) just to hold the state until the first step moves it to the model's device.
/// - `NODEVICE_SELECT=1`, only without `XDG_RUNTIME_DIR`: Mesa's implicit Vulkan layer
///   `VK_LAYER_MESA_device_select` asks Wayland for the display's GPU each time adapters are
///   listed, and without that variable (a headless server, a CI container) libwayland prints
///   "error: XDG_RUNTIME_DIR is invalid or not set" four times around our own messages.
///   Without it there is no Wayland display to match either, so the layer has nothing to do.
pub fn environment_defaults(
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(&'static str, &'static str)> {
    let mut set = Vec::new();
    if get("BURN_DEVICE").is_none() {
        set.push(("BURN_DEVICE", "flex"));
    }
    if get("XDG_RUNTIME_DIR").is_none() && get("NODEVICE_SELECT").is_none() {
        set.push(("NODEVICE_SELECT", "1"));
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_selection_sees_the_same_adapter() {
        // burn's wgpu runtime starts once per process; the second run of the app asks again
        let first = select(DeviceChoice::Auto).unwrap();
        let second = select(DeviceChoice::Auto).unwrap();
        assert!(
            !second.reason.contains("already initialized"),
            "{}",
            second.reason
        );
        assert_eq!((first.name, first.reason), (second.name, second.reason));
    }

    #[test]
    fn a_wgpu_device_states_its_buffer_limit_and_the_cpu_none() {
        assert_eq!(max_buffer_bytes(&Device::flex()), None);
        let Ok(wgpu) = select(DeviceChoice::Wgpu) else {
            assert!(
                std::env::var_os("SPARSECAPS_REQUIRE_WGPU").is_none(),
                "no wgpu adapter"
            );
            return;
        };
        let limit = max_buffer_bytes(&wgpu.device).expect("the probed device's limit");
        eprintln!("{wgpu}: buffers up to {} MiB", limit >> 20);
        // WebGPU's own minimum for a storage binding is 128 MiB
        assert!(limit >= 128 << 20, "{limit}");
        assert_eq!(max_buffer_bytes(&wgpu.device.clone().autodiff()), Some(limit));
    }

    #[test]
    fn environment_defaults_never_override_the_user() {
        let none = |_: &str| None;
        assert_eq!(
            environment_defaults(none),
            [("BURN_DEVICE", "flex"), ("NODEVICE_SELECT", "1")]
        );
        let desktop = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/1000".into());
        assert_eq!(environment_defaults(desktop), [("BURN_DEVICE", "flex")]);
        let user = |k: &str| (k == "BURN_DEVICE" || k == "NODEVICE_SELECT").then(|| "0".into());
        assert!(environment_defaults(user).is_empty());
    }
}
