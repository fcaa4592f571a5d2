//! File dialogs that do not stop the window: the dialog is opened from the UI thread and
//! waited for on a thread of its own, so frames (and the workers' events) keep flowing
//! while the user picks. Every action a dialog starts is also callable with a path, which
//! is how the tests drive it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// An open file dialog (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    answer: Arc<OnceLock<Option<PathBuf>>>,
}

/// Where an open dialog stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// Still open.
    Waiting,
    /// The user chose this path.
    Path(PathBuf),
    /// Closed without a choice (or the dialog could not be shown).
    Nothing,
}

impl Dialog {
    /// Opens `dialog` (rfd's, built on the UI thread as rfd recommends) and waits for it
    /// on a new thread, which repaints `ctx` when the user has chosen.
    pub fn open(
        ctx: &egui::Context,
        dialog: impl std::future::Future<Output = Option<rfd::FileHandle>> + Send + 'static,
    ) -> std::io::Result<Self> {
        let answer = Arc::new(OnceLock::new());
        let (set, ctx) = (answer.clone(), ctx.clone());
        std::thread::Builder::new()
            .name("sparsecaps-dialog".into())
            .spawn(move || {
                // a dialog that fails answers "nothing" rather than staying open for ever
                let chosen = crate::threads::catch_panic(|| pollster::block_on(dialog))
                    .ok()
                    .flatten()
                    .map(|h| h.path().to_path_buf());
                let _ = set.set(chosen);
                ctx.request_repaint();
            })?;
        Ok(Self { answer })
    }

    /// Where the dialog stands now (never waits).
    pub fn poll(&self) -> Picked {
        match self.answer.get() {
            None => Picked::Waiting,
            Some(Some(p)) => Picked::Path(p.clone()),
            Some(None) => Picked::Nothing,
        }
    }
}

/// A panel's one open dialog and what its answer is for.
#[derive(Debug, Clone)]
pub struct OpenDialog<P> {
    /// What the chosen path will be used for.
    pub purpose: P,
    dialog: Dialog,
}

/// Opens a dialog for `purpose` unless one is open already; an error (no thread) is text
/// for the panel to show.
pub fn open<P>(
    slot: &mut Option<OpenDialog<P>>,
    purpose: P,
    ctx: &egui::Context,
    dialog: impl std::future::Future<Output = Option<rfd::FileHandle>> + Send + 'static,
) -> Result<(), String> {
    if slot.is_some() {
        return Ok(());
    }
    let dialog = Dialog::open(ctx, dialog).map_err(|e| format!("cannot open a file dialog: {e}"))?;
    *slot = Some(OpenDialog { purpose, dialog });
    Ok(())
}

/// The answer of the dialog in `slot`, once there is one (the slot is then empty again):
/// the purpose and the chosen path, if any.
pub fn answer<P>(slot: &mut Option<OpenDialog<P>>) -> Option<(P, Option<PathBuf>)> {
    let picked = slot.as_ref()?.dialog.poll();
    let path = match picked {
        Picked::Waiting => return None,
        Picked::Path(p) => Some(p),
        Picked::Nothing => None,
    };
    slot.take().map(|open| (open.purpose, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_answers_once_without_blocking_the_caller() {
        let ctx = egui::Context::default();
        // a "dialog" that the test closes by hand, standing in for the user
        let (close, closed) = std::sync::mpsc::sync_channel::<()>(1);
        let user = async move {
            let _ = closed.recv();
            None
        };
        let mut slot = None;
        assert_eq!(open(&mut slot, "folder", &ctx, user), Ok(()));
        // a second click while it is open opens nothing
        assert_eq!(open(&mut slot, "other", &ctx, async { None }), Ok(()));
        assert!(answer(&mut slot).is_none(), "still open");
        close.send(()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let got = loop {
            if let Some(a) = answer(&mut slot) {
                break a;
            }
            assert!(std::time::Instant::now() < deadline, "the dialog never answered");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(got, ("folder", None));
        assert!(slot.is_none() && answer(&mut slot).is_none());
    }
}
