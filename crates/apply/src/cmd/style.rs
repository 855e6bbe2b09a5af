//! Terminal manners: colours and progress only when the output is a terminal (and `NO_COLOR` is unset); plain text
//! in pipes, files and CI logs.

use std::io::IsTerminal;

/// Whether standard output is a terminal that takes colours.
pub fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Whether standard error is a terminal (progress bars go there).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// `text` in the ANSI colour `code` (`32` green, `31` red, `36` cyan, `1` bold) when `on`.
pub fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_only_when_asked() {
        assert_eq!(paint("+a", "32", false), "+a");
        assert_eq!(paint("+a", "32", true), "\x1b[32m+a\x1b[0m");
    }
}
