//! The shared number-and-unit splitter and the error every parser in this crate returns. Pure.

use thiserror::Error;

/// Why a human-written quantity could not be parsed. Each variant names the input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseError {
    /// Nothing was given.
    #[error("empty {what}: expected {example}")]
    Empty {
        /// What kind of value was expected ("throughput", "size", ...).
        what: &'static str,
        /// An example of a valid value.
        example: &'static str,
    },
    /// The numeric part is not a number.
    #[error(
        "invalid {what} '{input}': {} (example: {example})",
        number_problem(number)
    )]
    InvalidNumber {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
        /// The part that should have been a number.
        number: String,
        /// An example of a valid value.
        example: &'static str,
    },
    /// No unit after the number.
    #[error("{what} '{input}' has no unit: write it with one of {units} (example: {example})")]
    MissingUnit {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
        /// The accepted units.
        units: &'static str,
        /// An example of a valid value.
        example: &'static str,
    },
    /// The unit is not one we know.
    #[error("{what} '{input}' has an unknown unit '{unit}': use one of {units}")]
    UnknownUnit {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
        /// The accepted units.
        units: &'static str,
    },
    /// The unit could mean bytes or bits.
    #[error(
        "{what} '{input}' is ambiguous: '{unit}' could be bytes or bits; write {bytes} for bytes or {bits} for bits"
    )]
    AmbiguousUnit {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
        /// The byte spelling to use.
        bytes: String,
        /// The bit spelling to use.
        bits: String,
    },
    /// The value is negative.
    #[error("{what} '{input}' is negative: it must be zero or more")]
    Negative {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
    },
    /// The value is not finite or too large to represent.
    #[error("{what} '{input}' is out of range")]
    OutOfRange {
        /// What kind of value was expected.
        what: &'static str,
        /// The whole input.
        input: String,
    },
    /// A duration longer than any the tools can wait for or plan over.
    #[error("duration '{input}' is too long: at most 36500d (100 years)")]
    TooLong {
        /// The whole input.
        input: String,
    },
    /// An instance type name is not `family.size`.
    #[error("invalid instance type '{input}': expected FAMILY.SIZE such as m7g.2xlarge ({reason})")]
    InvalidInstance {
        /// The whole input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What is wrong with the numeric part of a quantity.
fn number_problem(number: &str) -> String {
    if number.is_empty() {
        "it does not start with a number".to_string()
    } else {
        format!("'{number}' is not a number")
    }
}

/// Splits `"1.5 GB/s"` into `(1.5, "GB/s")`; the unit may be empty.
pub(crate) fn split_number(
    input: &str,
    what: &'static str,
    example: &'static str,
) -> Result<(f64, String), ParseError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty { what, example });
    }
    let end = trimmed
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || c == '_'
                || (i == 0 && (c == '-' || c == '+'))
                || ((c == 'e' || c == 'E') && is_exponent(trimmed, i)))
        })
        .map(|(i, _)| i)
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(end);
    let cleaned: String = number.chars().filter(|&c| c != '_').collect();
    let value: f64 = cleaned.parse().map_err(|_| ParseError::InvalidNumber {
        what,
        input: input.to_string(),
        number: number.to_string(),
        example,
    })?;
    if !value.is_finite() {
        return Err(ParseError::OutOfRange {
            what,
            input: input.to_string(),
        });
    }
    if value < 0.0 || (value == 0.0 && cleaned.starts_with('-')) {
        return Err(ParseError::Negative {
            what,
            input: input.to_string(),
        });
    }
    Ok((value, unit.trim().to_string()))
}

/// True when the `e` at byte `i` starts an exponent (`1e3`), not a unit (`1EB`).
fn is_exponent(s: &str, i: usize) -> bool {
    let bytes = s.as_bytes();
    let prev_digit = i > 0 && bytes[i - 1].is_ascii_digit();
    let next = bytes.get(i + 1).copied();
    let next_ok = match next {
        Some(b'-') | Some(b'+') => bytes.get(i + 2).is_some_and(u8::is_ascii_digit),
        Some(b) => b.is_ascii_digit(),
        None => false,
    };
    prev_digit && next_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_number_and_unit() {
        assert_eq!(
            split_number("1.5 GB/s", "t", "x").unwrap(),
            (1.5, "GB/s".into())
        );
        assert_eq!(
            split_number("200MB/s", "t", "x").unwrap(),
            (200.0, "MB/s".into())
        );
        assert_eq!(
            split_number("1e3MB/s", "t", "x").unwrap(),
            (1000.0, "MB/s".into())
        );
        assert_eq!(
            split_number("1_000", "t", "x").unwrap(),
            (1000.0, String::new())
        );
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(matches!(
            split_number("abc", "t", "x"),
            Err(ParseError::InvalidNumber { .. })
        ));
        assert!(matches!(
            split_number("-5MB/s", "t", "x"),
            Err(ParseError::Negative { .. })
        ));
        assert!(matches!(
            split_number("  ", "t", "x"),
            Err(ParseError::Empty { .. })
        ));
        assert!(matches!(
            split_number("1.2.3MB", "t", "x"),
            Err(ParseError::InvalidNumber { .. })
        ));
        // The message names the problem, also when there is no number at all.
        let e = |s| {
            split_number(s, "throughput", "200MB/s")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("abc"),
            "invalid throughput 'abc': it does not start with a number (example: 200MB/s)"
        );
        assert_eq!(
            e("1.2.3MB"),
            "invalid throughput '1.2.3MB': '1.2.3' is not a number (example: 200MB/s)"
        );
    }
}
