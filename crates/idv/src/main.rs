//! The `idv` command.

// mimalloc: the server and `idv audit verify` allocate many small objects per
// request and per event; it is markedly faster than the system allocator here
// (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    idv::main()
}
