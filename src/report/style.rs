//! Colour for terminals: on when stdout is a terminal and NO_COLOR (https://no-color.org) is
//! unset or empty, unless `--color` says otherwise.

use crate::audit::CheckStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to colour, from the choice, whether stdout is a terminal and NO_COLOR's value.
pub fn wants_color(choice: ColorChoice, is_terminal: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && no_color.is_none_or(str::is_empty),
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A verdict word, padded to `width` before colouring so columns line up either way.
    pub fn verdict(&self, status: CheckStatus, width: usize) -> String {
        let text = format!("{:<width$}", status.as_str().to_uppercase());
        let code = match status {
            CheckStatus::Pass => "32",
            CheckStatus::Warn => "33",
            CheckStatus::Fail => "1;31",
            CheckStatus::Unknown => "35",
        };
        self.paint(code, &text)
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(wants_color(ColorChoice::Auto, true, None));
        assert!(wants_color(ColorChoice::Auto, true, Some("")));
        assert!(!wants_color(ColorChoice::Auto, true, Some("1")));
        assert!(!wants_color(ColorChoice::Auto, false, None));
        assert!(wants_color(ColorChoice::Always, false, Some("1")));
        assert!(!wants_color(ColorChoice::Never, true, None));
    }

    #[test]
    fn plain_style_adds_no_escape_codes() {
        let plain = Style { color: false };
        assert_eq!(plain.verdict(CheckStatus::Fail, 7), "FAIL   ");
        let coloured = Style { color: true };
        assert!(coloured
            .verdict(CheckStatus::Fail, 7)
            .contains("\x1b[1;31m"));
    }
}
