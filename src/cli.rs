//! The command line: `serve`, `migrate`, `openapi`, `org create`, `codes generate`.

use std::{
    io::{self, BufWriter, IsTerminal, Write},
    process::ExitCode,
};

use crate::{
    app::{Application, BoxError},
    config::{DatabaseConfig, ServeConfig},
    domain::{
        self,
        generator::Generator,
        pattern::{Pattern, PatternSpec},
    },
    store,
    telemetry::{self, LogFormat},
};
use clap::{Args, Parser, Subcommand};

/// coupond: coupon pools, issuance, redemption and notifications for loyalty programs.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Log filter, e.g. `info` or `coupond=debug,info`.
    #[arg(long, env = "COUPOND_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log line format: `text` for people, `json` for log collectors.
    #[arg(long, env = "COUPOND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply migrations and serve the HTTP API until SIGTERM or Ctrl-C.
    Serve(Box<ServeConfig>),
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) to stdout.
    Openapi,
    /// Manage tenants.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Work with code patterns; needs no database.
    #[command(subcommand)]
    Codes(CodesCommand),
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

#[derive(Subcommand, Debug)]
pub enum CodesCommand {
    /// Print COUNT unique codes of a pattern to stdout, one per line.
    Generate(GenerateCodes),
}

#[derive(Args, Debug)]
pub struct GenerateCodes {
    /// Placeholders: # 0-9, @ a-z, ^ A-Z, * 0-9A-Za-z, $ 0-9A-Z; `\` escapes; anything else is literal.
    #[arg(long)]
    pub pattern: String,
    /// How many codes to print; at most the pattern's combinations.
    #[arg(long)]
    pub count: u64,
    /// Characters no placeholder produces, comma-separated, e.g. O,0,I,1.
    #[arg(long, value_delimiter = ',')]
    pub exclude_chars: Vec<char>,
    /// Phrases no code contains, whatever their case, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude_phrases: Vec<String>,
    /// Put before every code (up to 10 of A-Z a-z 0-9 - _).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Put after every code (up to 10 of A-Z a-z 0-9 - _).
    #[arg(long)]
    pub suffix: Option<String>,
    /// Add a check character (Luhn mod N) between the pattern and the suffix.
    #[arg(long)]
    pub check_char: bool,
    /// The pool matches codes ignoring case: `*` draws from upper-case letters and digits.
    #[arg(long)]
    pub case_insensitive: bool,
    /// Key of the permutation: the same key prints the same codes. Random when omitted.
    #[arg(long)]
    pub key: Option<String>,
}

impl GenerateCodes {
    fn spec(&self) -> PatternSpec<'_> {
        PatternSpec {
            pattern: &self.pattern,
            exclude_chars: &self.exclude_chars,
            exclude_phrases: &self.exclude_phrases,
            prefix: self.prefix.as_deref(),
            suffix: self.suffix.as_deref(),
            check_char: self.check_char,
            case_insensitive: self.case_insensitive,
        }
    }
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(&cli.log, cli.log_format);
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
        Command::Openapi => print!("{}", crate::api::spec::yaml()),
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
        Command::Codes(CodesCommand::Generate(args)) => generate_codes(&args)?,
    }
    Ok(())
}

fn generate_codes(args: &GenerateCodes) -> Result<(), BoxError> {
    let pattern = Pattern::parse(&args.spec())?;
    if u128::from(args.count) > pattern.combinations() {
        return Err(format!(
            "count: {} codes asked for, but the pattern has only {} combinations",
            args.count,
            pattern.combinations()
        )
        .into());
    }
    let key = args.key.clone().unwrap_or_else(Generator::new_key);
    let generator = Generator::new(&pattern, key.as_bytes());
    let codes = generator.codes_from(0).map(|(code, _)| code);
    let written = match write_codes(codes, args.count) {
        Ok(written) => written,
        // A reader such as `head` has seen enough.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    if written < args.count {
        return Err(format!(
            "count: only {written} codes could be made: excluded phrases rule out the rest"
        )
        .into());
    }
    Ok(())
}

/// Writes up to `count` codes to stdout, showing progress on stderr when a person watches it.
fn write_codes(codes: impl Iterator<Item = String>, count: u64) -> io::Result<u64> {
    const PROGRESS_EVERY: u64 = 1 << 16;
    let progress = io::stderr().is_terminal();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut written = 0u64;
    for code in codes.take(usize::try_from(count).unwrap_or(usize::MAX)) {
        out.write_all(code.as_bytes())?;
        out.write_all(b"\n")?;
        written += 1;
        if progress && written.is_multiple_of(PROGRESS_EVERY) {
            eprint!("\r{written}/{count} codes");
        }
    }
    out.flush()?;
    if progress {
        eprintln!("\r{written}/{count} codes");
    }
    Ok(written)
}
