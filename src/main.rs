//! The `dentite` command line. Everything it runs lives in the library.

use std::{io::Read, process::ExitCode};

use clap::{Parser, Subcommand};
use dentite::{
    Application, ServeOptions,
    auth::Role,
    cli,
    config::Settings,
    config::{LogFormat, ProcessEnv},
    shutdown_signal, telemetry,
};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "dentite",
    version,
    about = "Dentite Messaging: multi-tenant email and SMS for dental practices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then serve HTTP on BIND_ADDR with the send workers and schedulers.
    Serve {
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply migrations and exit.
    Migrate,
    Practice {
        #[command(subcommand)]
        command: PracticeCommand,
    },
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum PracticeCommand {
    /// Create a practice and print its id.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a login; the password is read from standard input.
    Create {
        #[arg(
            long,
            required_unless_present = "platform_admin",
            conflicts_with = "platform_admin"
        )]
        practice: Option<Uuid>,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["owner", "admin", "staff"], required_unless_present = "platform_admin")]
        role: Option<String>,
        /// Make an operator of the platform instead of a practice user.
        #[arg(long)]
        platform_admin: bool,
        /// Read the password from standard input (the default; kept for scripts that pass it).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh ENCRYPTION_KEY and AUTH_SIGNING_KEY.
    Generate,
    /// Re-encrypt every stored credential under the current ENCRYPTION_KEY.
    Rotate,
}

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    dentite::return_large_allocations_to_the_system();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Keys {
        command: KeysCommand::Generate,
    } = cli.command
    {
        print!("{}", cli::generate_keys());
        return Ok(());
    }
    // Logging starts before the settings are read, so their warnings (development keys) show.
    let _ = dotenvy::dotenv();
    telemetry::init_tracing(LogFormat::from_env(&ProcessEnv)?);
    let settings = Settings::from_process_env()?;
    dentite::install_crypto_provider();
    match cli.command {
        Command::Serve { no_migrate } => {
            let app = Application::build(
                settings,
                ServeOptions {
                    migrate: !no_migrate,
                    ..ServeOptions::default()
                },
            )
            .await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => cli::migrate(&settings).await,
        Command::Practice {
            command: PracticeCommand::Create { name },
        } => {
            println!("{}", cli::create_practice(&settings, &name).await?);
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    practice,
                    email,
                    role,
                    platform_admin,
                    password_stdin: _,
                },
        } => {
            let role = if platform_admin {
                Role::PlatformAdmin
            } else {
                role.as_deref()
                    .and_then(Role::parse)
                    .expect("clap requires a practice role")
            };
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            println!(
                "{}",
                cli::create_user(&settings, &email, password, role, practice).await?
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let changed = cli::rotate_keys(&settings).await?;
            println!("re-encrypted {changed} credentials");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate,
        } => unreachable!("handled before settings are read"),
    }
}
