//! Typed units for kafka-autopilot, parsed from human input at the edge with precise errors.
//! Pure: no I/O.
//!
//! Conventions (the same everywhere in the product):
//! - `MB` is the decimal megabyte, 10^6 bytes; `MiB` is 2^20 bytes. Rates are bytes per second
//!   and print in MB/s, the unit of the AWS sizing guide the capacity model follows.
//! - Bit rates (`Mbit/s`, `Gbps`) are accepted and divided by 8.
//! - Durations accept `s`, `m`/`min`, `h`, `d` and `w`, alone or combined (`1d12h`).

mod duration;
mod instance;
mod parse;
mod rate;
mod size;

pub use duration::Span;
pub use instance::InstanceType;
pub use parse::ParseError;
pub use rate::Throughput;
pub use size::ByteSize;
