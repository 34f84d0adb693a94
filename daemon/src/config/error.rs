//! Configuration errors that point at the line to fix.
//!
//! A practice administrator editing `billd.toml` should see every problem at
//! once, each as `FILE:LINE:COL: key: what is wrong`, the way a compiler
//! reports. This module holds that error type and the byte-offset to
//! line:column translation.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a configuration file. Lines and columns count from 1; columns
/// count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The configuration file, as it was given to the loader.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is, when it can be pinned to a place (a missing section
    /// cannot).
    pub location: Option<Location>,
    /// The key, as a path: `practice.npi`, `mail.password`,
    /// `job[2].schedule` (array indexes count from 0 in file order), or
    /// `syntax` for a TOML syntax error.
    pub key: String,
    /// What is wrong, in words an administrator can act on. Never contains a
    /// secret's value.
    pub message: String,
}

/// Why a configuration could not be loaded.
///
/// [`ConfigError::Io`] may succeed on a retry (the file may appear or become
/// readable); [`ConfigError::Invalid`] needs the file edited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration. Displays one
    /// problem per line, in file order.
    #[error("{}", DisplayProblems { file, problems })]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// Every problem found, in file order; never empty.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty for an I/O error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

struct DisplayProblems<'a> {
    file: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for DisplayProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &problem.location {
                Some(location) => write!(f, "{location}: ")?,
                None => write!(f, "{}: ", self.file.display())?,
            }
            write!(f, "{}: {}", problem.key, problem.message)?;
        }
        Ok(())
    }
}

/// The text of a configuration file with its name, turning byte offsets
/// (as TOML spans give them) into [`Location`]s.
#[derive(Debug)]
pub(crate) struct SourceText<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> SourceText<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            file,
            text,
            line_starts,
        }
    }

    /// The location of byte `offset` (clamped to the text).
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        Location {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    /// The location where `span` begins.
    pub(crate) fn at(&self, span: &Range<usize>) -> Location {
        self.location(span.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a = 1\nné = \"x\"\n\nlast";
        let src = SourceText::new(Path::new("b.toml"), text);
        let at = |o| {
            let l = src.location(o);
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(4), (1, 5));
        assert_eq!(at(5), (1, 6)); // the newline itself
        assert_eq!(at(6), (2, 1));
        // 'é' is two bytes; the '=' after "né " is the 4th character.
        let eq = text.find("= \"x\"").unwrap();
        assert_eq!(at(eq), (2, 4));
        assert_eq!(at(text.len()), (4, 5));
        assert_eq!(at(text.len() + 10), (4, 5));
    }

    #[test]
    fn displays_one_problem_per_line() {
        let err = ConfigError::Invalid {
            file: "billd.toml".into(),
            problems: vec![
                Problem {
                    location: Some(Location {
                        file: "billd.toml".into(),
                        line: 3,
                        column: 7,
                    }),
                    key: "practice.npi".into(),
                    message: "bad".into(),
                },
                Problem {
                    location: None,
                    key: "store".into(),
                    message: "missing section [store]".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "billd.toml:3:7: practice.npi: bad\nbilld.toml: store: missing section [store]"
        );
    }
}
