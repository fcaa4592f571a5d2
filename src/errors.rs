//! Error text shared by the CLI and the worker threads.

/// An error and its causes joined with ": ", leaving out a cause whose text the message
/// already holds (many errors print their source themselves), and a cause's leading
/// "NAME: " when the message already ends with NAME (`dataset /x` + `/x: no such folder`
/// gives `dataset /x: no such folder`).
pub fn error_chain(e: &anyhow::Error) -> String {
    join_causes(e.chain().map(ToString::to_string))
}

/// [`error_chain`] of a typed error: it and its sources.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    join_causes(causes(e))
}

/// [`cause_chain`] after a context line (what was being done, e.g. `dataset /x`).
pub fn in_context(context: &str, e: &(dyn std::error::Error + 'static)) -> String {
    join_causes(std::iter::once(context.to_string()).chain(causes(e)))
}

/// The messages of `e` and its sources, outermost first.
fn causes<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = String> + 'a {
    std::iter::successors(Some(e), |c| c.source()).map(ToString::to_string)
}

/// Joins messages, outermost first, as [`error_chain`] describes.
fn join_causes(causes: impl Iterator<Item = String>) -> String {
    let mut msg = String::new();
    for full in causes {
        if msg.contains(&full) {
            continue;
        }
        let repeated = full
            .match_indices(": ")
            .map(|(i, _)| i)
            .filter(|&i| i > 0 && msg.ends_with(&full[..i]))
            .max();
        let text = repeated.map_or(full.as_str(), |i| &full[i + 2..]);
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(text);
    }
    msg
}

/// A hint for a failure message (a panic) that says a device allocation failed, else
/// nothing.
pub fn memory_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let memory = ["buffertoobig", "out of memory", "outofmemory", "allocat"]
        .iter()
        .any(|k| m.contains(k));
    if memory {
        "; the device could not allocate a buffer: try a smaller batch (--batch) or the CPU (--device cpu)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_left_out() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::new(io).context("model.safetensors: disk full");
        assert_eq!(error_chain(&e), "model.safetensors: disk full");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
        let e = anyhow::anyhow!("/x: no such folder").context("dataset /x");
        assert_eq!(error_chain(&e), "dataset /x: no such folder");
    }
}
