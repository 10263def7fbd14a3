use std::process::ExitCode;

fn main() -> ExitCode {
    match flexsync::cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.exit_code();
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::from(code)
        }
    }
}
