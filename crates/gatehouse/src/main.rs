//! `gatehouse`: the control-plane server and the command-line client in one binary.

mod cli;
mod client;
mod cmd;
mod credentials;
mod output;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// Whether the command line is `gatehouse … secret set …`.
fn is_secret_set() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|w| w[0] == "secret" && w[1] == "set")
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if e.kind() != clap::error::ErrorKind::DisplayHelp
                && e.kind() != clap::error::ErrorKind::DisplayVersion
                && is_secret_set() =>
        {
            // clap quotes unexpected arguments back; here one of them may be a secret value.
            eprintln!(
                "error: `gatehouse secret set NAME` reads the value from --from-file FILE or standard input, never from the command line (see --help)"
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<cmd::Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<cmd::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            // One line with the reason; causes are joined so nothing is lost.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
