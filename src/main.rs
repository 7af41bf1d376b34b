//! The `capscope` binary: everything lives in the library; see `capscope::cli`.

/// mimalloc instead of the system allocator: LLSD decoding and body handling allocate many small
/// strings, and mimalloc serves them several times faster (see docs/architecture.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    capscope::cli::main()
}
