//! `aurastream`: answers "are we within target, and if not, where" from what the
//! collector shipped to CloudWatch and X-Ray — the monitoring guide's KPIs, trace
//! bottlenecks, alarm drift and cost — so operators need not rewrite its Python scripts.
//!
//! Exit status: 0 when everything checked is within target, 1 when a gated KPI misses
//! (or has no data) or `alarms verify` finds a problem, 2 when the command could not run
//! (bad arguments, no credentials, access denied, an API error).

mod aws;
mod kpis;
mod sparkline;
mod table;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use aws::AwsOptions;

#[derive(Parser, Debug)]
#[command(
    name = "aurastream",
    version,
    about = "AuraStream operations: KPIs, trace bottlenecks, alarm drift and cost from CloudWatch and X-Ray"
)]
struct Cli {
    #[command(flatten)]
    aws: AwsArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where AWS is: the standard chain (environment, profile, SSO, role) unless given here.
#[derive(Args, Debug)]
struct AwsArgs {
    /// AWS region (default: AWS_REGION, then the profile's region).
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// Named profile from ~/.aws/config (default: AWS_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// One endpoint for every AWS call, e.g. http://127.0.0.1:5000 for moto or LocalStack.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The guide's five KPIs against their targets (exit 1 if one misses).
    Kpis {
        /// How far back to look (e.g. 15m, 1h, 1d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        since: Duration,
        /// Only series with a `service.name` or `ServiceName` dimension equal to NAME.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Namespace of the application metrics.
        #[arg(long, default_value = "AuraStream/Application")]
        namespace: String,
        /// YAML overriding the guide's targets (e.g. `latency_p99: {target: 800}`).
        #[arg(long, value_name = "FILE")]
        targets: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(within) => {
            if within {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command; `Ok(false)` when it found something outside target.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let options = AwsOptions {
        region: cli.aws.region,
        profile: cli.aws.profile,
        endpoint_url: cli.aws.endpoint_url,
    };
    let clients = aws::connect(&options).await?;
    match cli.command {
        Command::Kpis {
            since,
            service,
            namespace,
            targets,
            format,
        } => {
            let args = kpis::KpiArgs {
                since,
                namespace,
                service,
                targets,
            };
            let report = kpis::collect(&clients, &args).await?;
            match format {
                Format::Table => print!("{}", kpis::render_table(&report)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(!report.fails())
        }
    }
}
