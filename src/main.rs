//! The `capscope` binary: everything lives in the library; see `capscope::cli`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    capscope::cli::decode::prefer_huge_pages();
    capscope::cli::main()
}
