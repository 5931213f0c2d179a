//! The `idv` command.

fn main() -> std::process::ExitCode {
    idv::main()
}
