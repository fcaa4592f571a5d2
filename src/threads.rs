//! A worker thread behind bounded channels: commands in, events out. The trainer and the
//! inspection worker are both one of these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Runs `f`, turning a panic into an error message, so one failing command does not end a
/// worker thread (the UI shows the message and stays usable).
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let hint = crate::errors::memory_hint(&what);
        format!("internal error in a worker thread: {what}{hint}")
    })
}

/// Why a command did not reach a worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Its queue is full: the worker is behind; try again.
    #[error("the {0} is busy: try again")]
    Busy(&'static str),
    /// The thread has ended (or never started).
    #[error("the {0} has stopped")]
    Stopped(&'static str),
}

/// A flag the UI raises to stop a worker's long command early (the worker polls it).
pub type CancelFlag = Arc<AtomicBool>;

/// How long dropping a [`WorkerHandle`] waits for its thread to end.
pub const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Handle to a named worker thread. Dropping it raises the cancel flag, sends the shutdown
/// command and waits up to [`JOIN_WAIT`] for the thread to end, draining its events so a
/// blocked sender can finish.
pub struct WorkerHandle<C, E> {
    commands: SyncSender<C>,
    events: Receiver<E>,
    handle: Option<JoinHandle<()>>,
    shutdown: Option<C>,
    cancel: CancelFlag,
    /// What the thread is called in messages: its name without `sparsecaps-` ("trainer",
    /// "inspector").
    what: &'static str,
}

impl<C: Send + 'static, E: Send + 'static> WorkerHandle<C, E> {
    /// Starts `body` on a thread named `name` with channels of the given capacities and
    /// the handle's cancel flag; `shutdown` is sent when the handle is dropped.
    pub fn start(
        name: &'static str,
        capacity: (usize, usize),
        shutdown: C,
        body: impl FnOnce(Receiver<C>, SyncSender<E>, CancelFlag) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (ctx, crx) = sync_channel(capacity.0);
        let (etx, erx) = sync_channel(capacity.1);
        let cancel = CancelFlag::default();
        let flag = cancel.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(crx, etx, flag))?;
        Ok(Self {
            commands: ctx,
            events: erx,
            handle: Some(handle),
            shutdown: Some(shutdown),
            cancel,
            what: name.trim_start_matches("sparsecaps-"),
        })
    }

    /// Asks the worker to stop its current long command (e.g. "Keep"'s fine-tuning).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Lowers the cancel flag, so a cancel meant for an earlier command cannot stop the
    /// next one. Call it just before sending the command that a later cancel is meant for.
    pub fn clear_cancel(&self) {
        self.cancel.store(false, Ordering::Relaxed);
    }

    /// Sends a command without waiting; a full queue or an ended thread is an error.
    pub fn send(&self, command: C) -> Result<(), SendError> {
        self.send_or_return(command).map_err(|(e, _)| e)
    }

    /// Like [`Self::send`], but a command that was not sent comes back with the error.
    pub fn send_or_return(&self, command: C) -> Result<(), (SendError, C)> {
        self.commands.try_send(command).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(c) => (SendError::Busy(self.what), c),
            std::sync::mpsc::TrySendError::Disconnected(c) => (SendError::Stopped(self.what), c),
        })
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<E> {
        self.events.try_recv().ok()
    }

    /// Waits for the next event; `None` once the thread has ended.
    pub fn recv_event(&self) -> Option<E> {
        self.events.recv().ok()
    }
}

impl<C, E> WorkerHandle<C, E> {
    /// Raises the cancel flag and queues the shutdown command (once), without waiting.
    pub fn stop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(c) = self.shutdown.take() {
            let _ = self.commands.try_send(c);
        }
    }

    /// Waits until the thread has ended or `deadline` has passed, draining its events so a
    /// blocked sender can finish. A thread still inside a long step is left to end on its
    /// own (the flags stop it at its next check; files are written atomically).
    pub fn wait_until(&mut self, deadline: std::time::Instant) {
        if let Some(h) = self.handle.take() {
            while !h.is_finished() && std::time::Instant::now() < deadline {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

impl<C, E> Drop for WorkerHandle<C, E> {
    fn drop(&mut self) {
        self.stop();
        self.wait_until(std::time::Instant::now() + JOIN_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_handle_does_not_wait_for_a_thread_stuck_in_a_long_step() {
        let w = WorkerHandle::start("t", (1, 1), (), |_rx: Receiver<()>, _tx: SyncSender<()>, _| {
            // a step that checks no flag for far longer than the wait
            std::thread::sleep(std::time::Duration::from_secs(20));
        })
        .unwrap();
        let asked = std::time::Instant::now();
        drop(w);
        let waited = asked.elapsed();
        assert!(waited >= JOIN_WAIT && waited < JOIN_WAIT * 5, "{waited:?}");
    }

    #[test]
    fn a_panicking_command_becomes_an_error_and_the_worker_serves_the_next() {
        let w = WorkerHandle::start("t", (4, 4), None, |rx, tx, _| {
            while let Ok(Some(n)) = rx.recv() {
                let r = catch_panic(|| {
                    if n == 0 {
                        panic!("boom");
                    }
                    100 / n
                });
                if tx.send(r).is_err() {
                    return;
                }
            }
        })
        .unwrap();
        assert!(w.send(Some(0)).is_ok());
        let err = w.recv_event().unwrap().unwrap_err();
        assert!(err.contains("boom"), "{err}");
        assert!(w.send(Some(5)).is_ok());
        assert_eq!(w.recv_event().unwrap(), Ok(20));
    }

    #[test]
    fn a_failed_device_allocation_gets_a_hint() {
        let err = catch_panic(|| panic!("can't allocate buffer of size: 188160000")).unwrap_err();
        assert!(err.contains("188160000") && err.contains("--device cpu"), "{err}");
        let err = catch_panic(|| panic!("boom")).unwrap_err();
        assert!(!err.contains("--device"), "{err}");
    }
}
