//! Output helpers shared by every command: JSON on stdout, aligned text tables, and how errors
//! are printed and mapped to exit codes. Performs I/O (writes to stdout and stderr).

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;

use serde::Serialize;

/// Exit code for a command that failed while running (unreachable cluster, refused operation...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid arguments or input (bad unit, unknown instance, malformed file).
/// clap uses the same code for argument errors it detects itself.
pub const EXIT_USAGE: u8 = 2;

/// An error caused by what the user gave us (arguments, files), as opposed to a failure while
/// running. Commands wrap such errors in this type so that `main` exits with [`EXIT_USAGE`].
#[derive(Debug)]
pub struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for UsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Wraps any error as a [`UsageError`] (exit code 2).
pub fn usage(err: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(UsageError(err.into()))
}

/// Checks, before a long run, that a file can be written at `path` when it ends: its
/// directory exists and it is not a directory itself. A usage error (exit 2) names `flag`.
pub fn check_output_path(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Err(usage(anyhow::anyhow!(
            "{flag} {} is a directory: name a file in it",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if dir.is_dir() {
        return Ok(());
    }
    // The nearest part of the path that exists: a file there is not a directory, whatever
    // follows it.
    if let Some(file) = dir
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.symlink_metadata().is_ok() && !a.is_dir())
    {
        return Err(usage(anyhow::anyhow!(
            "{flag} {}: {} is a file, not a directory; name a file in an existing directory",
            path.display(),
            file.display()
        )));
    }
    Err(usage(anyhow::anyhow!(
        "{flag} {}: the directory {} does not exist; create it first",
        path.display(),
        dir.display()
    )))
}

/// The exit code for an error returned by a command.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Prints an error and its chain of causes to stderr, one cause per line.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("{}", error_text(err));
}

/// An error and its chain of causes, one per line. A cause whose text the line above already
/// includes (errors that show their source in their own message) is not repeated.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = format!("error: {err}");
    let mut above = err.to_string();
    let mut source = match err.downcast_ref::<UsageError>() {
        Some(usage) => usage.0.source(),
        None => err.source(),
    };
    while let Some(cause) = source {
        let line = cause.to_string();
        if !above.contains(&line) {
            let _ = write!(text, "\n  caused by: {line}");
        }
        above = line;
        source = cause.source();
    }
    text
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print_text(&text)
}

/// Writes text to stdout. A reader that closes the pipe early (`kpilot ... | head`) is not a
/// failure: the rest is dropped quietly.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// A plain-text table with a header row; columns are aligned, numbers right-aligned.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it should have as many cells as the header.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Renders the table with two spaces between columns.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..columns)
            .map(|i| {
                !self.rows.is_empty()
                    && self
                        .rows
                        .iter()
                        .filter_map(|r| r.get(i))
                        .all(|c| looks_numeric(c))
            })
            .collect();
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut parts = Vec::with_capacity(columns);
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                if numeric[i] {
                    parts.push(format!("{}{cell}", " ".repeat(pad)));
                } else if i + 1 == columns {
                    parts.push(cell.to_string());
                } else {
                    parts.push(format!("{cell}{}", " ".repeat(pad)));
                }
            }
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(&self.header, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }
}

fn looks_numeric(cell: &str) -> bool {
    let trimmed = cell.trim_end_matches(['%', 'x']).trim_start_matches('$');
    !trimmed.is_empty()
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut t = Table::new(["name", "MB/s"]);
        t.row(["m7g.large", "63"]);
        t.row(["m7g.2xlarge", "200.5"]);
        assert_eq!(
            t.render(),
            "name          MB/s\nm7g.large       63\nm7g.2xlarge  200.5\n"
        );
    }

    /// `--report file.txt/x.html`, `file.txt` a regular file, said that the directory
    /// `file.txt` did not exist.
    #[test]
    fn an_output_path_under_a_file_says_the_file_is_not_a_directory() {
        let dir = std::env::temp_dir().join(format!("kpilot-output-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("file.txt");
        std::fs::write(&file, "x").expect("a file");
        let message = |path: &std::path::Path| {
            check_output_path("--report", path)
                .expect_err("refused")
                .to_string()
        };
        for path in [file.join("x.html"), file.join("sub").join("x.html")] {
            assert_eq!(
                message(&path),
                format!(
                    "--report {}: {} is a file, not a directory; name a file in an existing directory",
                    path.display(),
                    file.display()
                )
            );
        }
        let missing = dir.join("missing").join("x.html");
        assert_eq!(
            message(&missing),
            format!(
                "--report {}: the directory {} does not exist; create it first",
                missing.display(),
                dir.join("missing").display()
            )
        );
        check_output_path("--report", &dir.join("x.html")).expect("a file in a directory");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usage_errors_exit_with_two() {
        let err = usage(anyhow::anyhow!("bad unit"));
        assert_eq!(exit_code_for(&err), EXIT_USAGE);
        assert_eq!(exit_code_for(&anyhow::anyhow!("broker down")), EXIT_FAILURE);
    }

    #[test]
    fn a_cause_already_shown_in_the_line_above_is_not_repeated() {
        /// "reading the placement failed", with or without its cause in the message.
        #[derive(Debug)]
        struct Read {
            shows_cause: bool,
            cause: std::io::Error,
        }
        impl std::fmt::Display for Read {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("reading the placement failed")?;
                if self.shows_cause {
                    write!(f, ": {}", self.cause)?;
                }
                Ok(())
            }
        }
        impl std::error::Error for Read {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.cause)
            }
        }
        let err = |shows_cause| {
            anyhow::Error::new(Read {
                shows_cause,
                cause: std::io::Error::other("topic secret is not visible"),
            })
            .context("cannot plan")
        };
        assert_eq!(
            error_text(&err(true)),
            "error: cannot plan\n  caused by: reading the placement failed: topic secret is not visible"
        );
        assert_eq!(
            error_text(&err(false)),
            "error: cannot plan\n  caused by: reading the placement failed\n  caused by: topic secret is not visible"
        );
    }
}
