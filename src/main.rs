//! The `diemcau` binary: parse arguments, start logging, run, map the result
//! to an exit code. Everything else lives in the library.

use clap::Parser;

fn main() {
    let args = diemcau::cli::Args::parse();
    diemcau::logging::init(args.verbose);
    let code = match diemcau::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("diemcau: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
