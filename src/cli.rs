//! The command line: `serve`, `migrate`, `openapi`, `org create`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::{
    app::{Application, BoxError},
    config::{DatabaseConfig, ServeConfig},
    domain, store,
};

/// coupond: coupon pools, issuance, redemption and notifications for loyalty programs.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Log filter, e.g. `info` or `coupond=debug,info`.
    #[arg(long, env = "COUPOND_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply migrations and serve the HTTP API until SIGTERM or Ctrl-C.
    Serve(ServeConfig),
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) to stdout.
    Openapi,
    /// Manage tenants.
    #[command(subcommand)]
    Org(OrgCommand),
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an org and print `{"org_id": ..., "api_key": "..."}` with its admin key (shown once).
    Create {
        /// Display name of the org.
        #[arg(long)]
        name: String,
        /// IANA time zone its days are counted in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Command::Serve(serve) => {
            let app = Application::build(&cli.database, &serve).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = store::connect(&cli.database).await?;
            store::migrate(&db).await?;
            eprintln!("migrations applied");
        }
        Command::Openapi => print!("{}", crate::api::openapi_service().spec_yaml()),
        Command::Org(OrgCommand::Create { name, timezone }) => {
            let name = domain::org::validate_name(&name).map_err(|e| e.reason)?;
            domain::org::parse_timezone(&timezone).map_err(|e| e.reason)?;
            let db = store::connect(&cli.database).await?;
            store::migrate(&db).await?;
            let (org, api_key) = store::orgs::create(&db, name, timezone).await?;
            println!(
                "{}",
                serde_json::json!({ "org_id": org.id, "api_key": api_key })
            );
        }
    }
    Ok(())
}

fn init_tracing(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
