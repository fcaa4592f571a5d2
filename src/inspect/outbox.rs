//! The app's side of the inspection worker's command queue: commands whose latest value is
//! all that matters (the slider, the canvas, the dimension sliders, which model to show)
//! wait here while the worker's queue is full, so the last position of a drag is never
//! lost, and each kind keeps only its newest command.

use crate::threads::SendError;

use super::messages::InspectCommand;

/// Kinds of command where a newer one makes an older one pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    /// Which image to inspect: a drawing, a loaded file or a test image, or none ("Clear").
    Image,
    /// The slider's sparsity and method.
    Sparsity,
    /// The winning capsule's dimension offsets.
    Perturb,
    /// Which model to use.
    Model,
}

impl InspectCommand {
    /// The kind of command a newer one of which supersedes this one (None: every command
    /// of this kind counts, e.g. "Keep" or "Export").
    pub fn latest_wins(&self) -> Option<Latest> {
        match self {
            // "Clear" (Forget) supersedes an image still waiting, and the other way round
            Self::Inspect(_) | Self::PickTestImage(_) | Self::LoadImage { .. } | Self::Forget => {
                Some(Latest::Image)
            }
            Self::SetSparsity { .. } => Some(Latest::Sparsity),
            Self::Perturb(_) => Some(Latest::Perturb),
            Self::Load(_) | Self::LoadBytes { .. } => Some(Latest::Model),
            _ => None,
        }
    }
}

/// Commands that did not fit into the worker's queue yet, oldest first, at most one of
/// each [`Latest`] kind.
#[derive(Debug, Default)]
pub struct Outbox {
    waiting: Vec<InspectCommand>,
}

impl Outbox {
    /// Commands waiting for room in the worker's queue.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Sends what is waiting with `try_send`, oldest first, until the queue is full again.
    /// A worker that has stopped drops what was waiting for it.
    pub fn flush(
        &mut self,
        mut try_send: impl FnMut(InspectCommand) -> Result<(), (SendError, InspectCommand)>,
    ) {
        while !self.waiting.is_empty() {
            let first = self.waiting.remove(0);
            match try_send(first) {
                Ok(()) => {}
                Err((SendError::Busy(_), back)) => {
                    self.waiting.insert(0, back);
                    return;
                }
                Err((SendError::Stopped(_), _)) => self.waiting.clear(),
            }
        }
    }

    /// Sends `command` after whatever is waiting. A latest-wins command that finds the
    /// queue full waits here (replacing an older one of its kind) and counts as sent; any
    /// other command is refused while older ones still wait, so the order holds.
    pub fn send(
        &mut self,
        command: InspectCommand,
        mut try_send: impl FnMut(InspectCommand) -> Result<(), (SendError, InspectCommand)>,
    ) -> Result<(), SendError> {
        self.flush(&mut try_send);
        let kind = command.latest_wins();
        if let Some(k) = kind {
            self.waiting.retain(|c| c.latest_wins() != Some(k));
        }
        if !self.waiting.is_empty() {
            return match kind {
                Some(_) => {
                    self.waiting.push(command);
                    Ok(())
                }
                None => Err(SendError::Busy("inspector")),
            };
        }
        match try_send(command) {
            Ok(()) => Ok(()),
            Err((SendError::Busy(_), back)) if kind.is_some() => {
                self.waiting.push(back);
                Ok(())
            }
            Err((e, _)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of `room` places that records what it accepted.
    fn queue(
        room: &mut usize,
        got: &mut Vec<String>,
        c: InspectCommand,
    ) -> Result<(), (SendError, InspectCommand)> {
        if *room == 0 {
            return Err((SendError::Busy("inspector"), c));
        }
        *room -= 1;
        got.push(format!("{c:?}"));
        Ok(())
    }

    fn sparsity(s: f64) -> InspectCommand {
        InspectCommand::SetSparsity {
            sparsity: s,
            method: crate::prune::PruneMethod::Capsules,
        }
    }

    #[test]
    fn the_last_slider_position_reaches_a_busy_worker_once_it_has_room() {
        let (mut room, mut got) = (1, Vec::new());
        let mut out = Outbox::default();
        for s in [0.1, 0.2, 0.3, 0.4] {
            assert_eq!(out.send(sparsity(s), |c| queue(&mut room, &mut got, c)), Ok(()));
        }
        assert_eq!(
            out.send(InspectCommand::Perturb(vec![0.5]), |c| queue(
                &mut room, &mut got, c
            )),
            Ok(())
        );
        // a command that is not latest-wins may not overtake the waiting ones
        assert_eq!(
            out.send(InspectCommand::Reset, |c| queue(&mut room, &mut got, c)),
            Err(SendError::Busy("inspector"))
        );
        assert_eq!(out.len(), 2);
        room = 10;
        out.flush(|c| queue(&mut room, &mut got, c));
        assert!(out.is_empty());
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].contains("0.1") && got[1].contains("0.4") && got[2].contains("Perturb"),
            "{got:?}"
        );
    }

    #[test]
    fn clear_replaces_a_drawing_that_still_waits() {
        let mut got = Vec::new();
        let mut out = Outbox::default();
        let busy = |c| Err((SendError::Busy("inspector"), c));
        assert_eq!(out.send(InspectCommand::Inspect(vec![1.0]), busy), Ok(()));
        assert_eq!(
            out.send(InspectCommand::Forget, busy),
            Ok(()),
            "Clear is not refused"
        );
        let mut room = 5;
        out.flush(|c| queue(&mut room, &mut got, c));
        assert_eq!(got, ["Forget"], "the cleared drawing is never inspected");
    }

    #[test]
    fn a_stopped_worker_is_an_error_and_drops_what_waited() {
        let mut out = Outbox::default();
        let busy = |c| Err((SendError::Busy("inspector"), c));
        assert_eq!(out.send(sparsity(0.5), busy), Ok(()));
        let stopped = |c| Err((SendError::Stopped("inspector"), c));
        assert_eq!(
            out.send(InspectCommand::Reset, stopped),
            Err(SendError::Stopped("inspector"))
        );
        assert!(out.is_empty());
    }
}
