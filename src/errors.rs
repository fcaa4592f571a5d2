//! Error text shared by the CLI and the worker threads.

/// An error and its causes joined with ": ", leaving out a cause whose text the message
/// already holds (many errors print their source themselves).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
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
    }
}
