//! Configuration errors that point at `file:line:column` and the YAML path, with a snippet.

use std::fmt;
use std::sync::Arc;

use super::node::Location;

/// A YAML file's name and text, kept so errors can quote the offending line.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in errors (the path as given).
    pub name: Arc<str>,
    /// The file's text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A named source.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// An error at a location in this file.
    pub fn error(
        &self,
        location: Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            location,
            path: path.into(),
            message: message.into(),
            line_text: self
                .text
                .lines()
                .nth(location.line.saturating_sub(1) as usize)
                .map(str::to_owned),
        }
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File name.
    pub file: Arc<str>,
    /// Where.
    pub location: Location,
    /// YAML path such as `pipelines.orders.transforms[0].patterns[0]` (empty at the top).
    pub path: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
    /// The line the error points at, for the snippet.
    pub line_text: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file, self.location.line, self.location.column
        )?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(text) = &self.line_text {
            // The line is quoted as written: a URL in it may carry a password (the very
            // mistake an error may be about), which is hidden as in every other message.
            let text = crate::redact::urls(text);
            let n = self.location.line.to_string();
            let pad = " ".repeat(n.len());
            let col = self.location.column.saturating_sub(1) as usize;
            let caret_pad: String = text
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{n} | {text}\n{pad} | {caret_pad}^")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a set of pipeline files (loading continues past the first one so an
/// operator sees them all at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "error: {e}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// The closest candidate to a misspelled name, if it is close enough to suggest.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_column_path_and_points_at_the_column() {
        let src = SourceFile::new("p.yaml", "a: 1\nbb: oops\n");
        let e = src.error(Location { line: 2, column: 5 }, "pipelines.x", "bad value");
        let text = e.to_string();
        assert!(
            text.starts_with("p.yaml:2:5: pipelines.x: bad value"),
            "{text}"
        );
        assert!(text.contains("2 | bb: oops\n  |     ^"), "{text}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("patern", ["patterns", "type"]),
            Some("patterns")
        );
        assert_eq!(did_you_mean("zzz", ["patterns", "type"]), None);
    }
}
