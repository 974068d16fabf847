//! `aurastream`: answers "are we within target, and if not, where" from what the
//! collector shipped to CloudWatch and X-Ray — the monitoring guide's KPIs, trace
//! bottlenecks, alarm drift and cost — so operators need not rewrite its Python scripts.
//!
//! Exit status: 0 when everything checked is within target, 1 when a gated KPI misses
//! (or has no data) or `alarms verify` finds a problem, 2 when the command could not run
//! (bad arguments, no credentials, access denied, an API error).
#![forbid(unsafe_code)]

mod alarms;
mod aws;
mod cloudwatch;
mod cost;
mod kpis;
mod report;
mod sparkline;
mod table;
mod traces;
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
    /// Bottlenecks in recent X-Ray traces (the guide's TraceAnalyzer rules).
    Traces {
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        since: Duration,
        /// An X-Ray filter expression, e.g. 'service("aurastream-api") AND responsetime > 1'.
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
        /// How many of the slowest traces to fetch whole and analyse.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        rules: RuleArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Alarm drift: the guide's alarms as the project template defines them.
    #[command(subcommand)]
    Alarms(AlarmsCommand),
    /// The month's CloudWatch and X-Ray bill for what the collector ships, biggest first.
    Cost {
        /// The collector's health endpoint, whose /metrics says what it ships (without
        /// it, X-Ray is not estimated).
        #[arg(long, value_name = "URL")]
        collector: Option<String>,
        /// Days to estimate for.
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        /// Time between the two readings of /metrics.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        sample: Duration,
        /// A saved reading of /metrics (curl -o FILE URL/metrics) to measure from, taken
        /// at the file's modification time, instead of waiting --sample.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// YAML overriding the built-in price table (region, as_of, ...).
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,
        /// How many times each recorded trace is scanned (console, queries).
        #[arg(long, default_value_t = 1.0)]
        scan_factor: f64,
        /// Warn about dimensions with at least this many distinct values.
        #[arg(long, default_value_t = 50)]
        cardinality_warn: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// KPIs with charts, the worst traces and the cost estimate in one HTML page.
    Report {
        /// Where to write the page.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// How far back KPIs and traces go.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        since: Duration,
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        #[arg(long, default_value = "AuraStream/Application")]
        namespace: String,
        #[arg(long, value_name = "FILE")]
        targets: Option<PathBuf>,
        /// Traces shown as waterfalls (the slowest).
        #[arg(long, default_value_t = 3)]
        worst: usize,
        /// The collector's health endpoint, for the X-Ray part of the cost estimate.
        #[arg(long, value_name = "URL")]
        collector: Option<String>,
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        sample: Duration,
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,
    },
    /// One trace as a waterfall, with its bottlenecks and log lines.
    Trace {
        /// X-Ray trace id (1-5759e988-bd862e3fe1be46a994272793).
        id: String,
        /// Log groups to search for the trace id (repeatable; default: the guide's
        /// /aws/aurastream/{application,performance,business,security,audit}).
        #[arg(long = "log-group", value_name = "NAME")]
        log_groups: Vec<String>,
        #[command(flatten)]
        rules: RuleArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum AlarmsCommand {
    /// Every intended alarm exists with its threshold, and every alarm's metric has data.
    Verify {
        #[command(flatten)]
        template: TemplateArgs,
        /// Also check alarms whose name starts with this (empty: none).
        #[arg(long, default_value = "AuraStream-")]
        prefix: String,
        /// A metric that exists only once something fails, so no data is its healthy
        /// state (repeatable; default: the collector's failed, dropped and refused item
        /// counters).
        #[arg(long = "quiet-metric", value_name = "NAME")]
        quiet_metrics: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Create or update the intended alarms with PutMetricAlarm.
    Apply {
        #[command(flatten)]
        template: TemplateArgs,
        /// ARN for a topic resource of the template (repeatable), e.g.
        /// CriticalAlertsTopic=arn:aws:sns:us-east-1:123456789012:critical.
        #[arg(long = "topic-arn", value_name = "NAME=ARN", value_parser = key_value)]
        topic_arns: Vec<(String, String)>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Args, Debug)]
struct TemplateArgs {
    /// CloudFormation template whose AWS::CloudWatch::Alarm resources are intended
    /// (default: the project's deploy/cloudformation/aurastream-observability.yaml, built
    /// into this binary).
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Template parameter (repeatable), e.g. Environment=prod; others keep their defaults.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// The guide's TraceAnalyzer thresholds.
#[derive(Args, Debug, Clone, Copy)]
struct RuleArgs {
    /// A segment longer than this is slow.
    #[arg(long, default_value_t = 1000.0, value_name = "MS")]
    slow_ms: f64,
    /// A segment with more direct subsegments than this is complex.
    #[arg(long, default_value_t = 10, value_name = "N")]
    max_subsegments: usize,
}

impl RuleArgs {
    fn rules(self) -> traces::bottlenecks::Rules {
        traces::bottlenecks::Rules {
            slow_ms: self.slow_ms,
            max_subsegments: self.max_subsegments,
        }
    }
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
        Command::Traces {
            since,
            filter,
            limit,
            rules,
            format,
        } => {
            let args = traces::TracesArgs {
                since,
                filter,
                limit,
                rules: rules.rules(),
            };
            let report = traces::collect(&clients, &args).await?;
            match format {
                Format::Table => print!("{}", traces::render_traces(&report, &args.rules)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(true)
        }
        Command::Alarms(AlarmsCommand::Verify {
            template,
            prefix,
            quiet_metrics,
            format,
        }) => {
            let quiet = if quiet_metrics.is_empty() {
                alarms::QUIET_METRICS
                    .iter()
                    .map(|m| m.to_string())
                    .collect()
            } else {
                quiet_metrics.into_iter().collect()
            };
            let params = template.params.into_iter().collect();
            let (name, specs) =
                alarms::intended(template.template.as_deref(), &params, &clients.region)?;
            let report = alarms::verify(&clients, name, &specs, &prefix, &quiet).await?;
            match format {
                Format::Table => print!("{}", alarms::render_verify(&report)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(report.ok())
        }
        Command::Alarms(AlarmsCommand::Apply {
            template,
            topic_arns,
            format,
        }) => {
            let params = template.params.into_iter().collect();
            let (_, specs) =
                alarms::intended(template.template.as_deref(), &params, &clients.region)?;
            let topics = topic_arns.into_iter().collect();
            let (applied, warnings) = alarms::apply(&clients, &specs, &topics).await?;
            match format {
                Format::Table => print!("{}", alarms::render_apply(&applied, &warnings)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"alarms": applied, "warnings": warnings})
                    )?
                ),
            }
            Ok(true)
        }
        Command::Cost {
            collector,
            days,
            sample,
            baseline,
            prices,
            scan_factor,
            cardinality_warn,
            format,
        } => {
            let args = cost::CostArgs {
                collector,
                days,
                sample,
                baseline,
                prices,
                scan_factor,
                cardinality_warn,
            };
            let estimate = cost::collect(&clients, &args).await?;
            match format {
                Format::Table => print!("{}", cost::render(&estimate)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&estimate)?),
            }
            Ok(true)
        }
        Command::Report {
            html,
            since,
            service,
            namespace,
            targets,
            worst,
            collector,
            days,
            sample,
            baseline,
            prices,
        } => {
            let rules = traces::bottlenecks::Rules::default();
            let kpis = kpis::collect(
                &clients,
                &kpis::KpiArgs {
                    since,
                    namespace,
                    service,
                    targets,
                },
            )
            .await?;
            let trace_args = traces::TracesArgs {
                since,
                filter: None,
                limit: 50,
                rules,
            };
            let traces = traces::collect(&clients, &trace_args).await?;
            let mut details = Vec::new();
            for t in traces.analysed.iter().take(worst) {
                details.push(traces::detail(&clients, &t.id, &[], &rules).await?);
            }
            let cost = cost::collect(
                &clients,
                &cost::CostArgs {
                    collector,
                    days,
                    sample,
                    baseline,
                    prices,
                    scan_factor: 1.0,
                    cardinality_warn: 50,
                },
            )
            .await?;
            let page = report::html(&report::Report {
                generated: window::timestamp_text(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or_default(),
                ),
                region: &clients.region,
                kpis: &kpis,
                traces: &traces,
                worst: &details,
                cost: &cost,
            });
            std::fs::write(&html, page)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", html.display()))?;
            println!("wrote {}", html.display());
            Ok(true)
        }
        Command::Trace {
            id,
            log_groups,
            rules,
            format,
        } => {
            let groups = if log_groups.is_empty() {
                traces::GUIDE_LOG_GROUPS
                    .iter()
                    .map(|g| g.to_string())
                    .collect()
            } else {
                log_groups
            };
            let detail = traces::detail(&clients, &id, &groups, &rules.rules()).await?;
            match format {
                Format::Table => print!("{}", traces::render_detail(&detail, &groups)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&detail)?),
            }
            Ok(true)
        }
    }
}
