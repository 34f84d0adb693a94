//! The `billd` command line: one module per verb group.

pub mod x12;

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
