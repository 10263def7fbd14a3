use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Unwrapped lines keep URLs, paths and emails in messages copyable.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    match flexsync::cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.exit_code();
            // A closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "{:?}", miette::Report::new(err));
            ExitCode::from(code)
        }
    }
}
