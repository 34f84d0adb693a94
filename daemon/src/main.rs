//! The `billd` binary: parses the command line and maps outcomes to exit
//! codes (0 success, 1 failure at run time, 2 usage or configuration error).

fn main() -> std::process::ExitCode {
    billd::cli::main()
}
