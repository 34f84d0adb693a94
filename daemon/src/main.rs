//! The `billd` binary: parses the command line and maps outcomes to exit
//! codes (0 success, 1 failure at run time, 2 usage or configuration error).

/// mimalloc instead of the system allocator: the store (sled) allocates and
/// frees node copies on every write, and with mimalloc the store bench
/// writes about 1.2 times (indexed) to 1.6 times (unindexed) as fast.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    billd::cli::main()
}
