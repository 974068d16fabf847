//! `aurastream-collector`: the command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use aurastream_collector::config::{self, LogEncoding};
use aurastream_collector::net::tls_client::ClientTlsConfig;
use aurastream_collector::{lambda_extension, service, telemetry};

/// OpenTelemetry collector for services on AWS.
///
/// Receives OTLP (gRPC 4317, HTTP 4318), batches it and exports it. With no --config it
/// runs the built-in default: everything on loopback, written as OTLP/JSON lines under
/// ./aurastream-data/, health and metrics on http://127.0.0.1:13133.
#[derive(Parser, Debug)]
#[command(name = "aurastream-collector", version, about, long_about)]
struct Cli {
    /// Configuration file (YAML, OpenTelemetry Collector layout). Repeat to layer files:
    /// later files override earlier ones key by key.
    #[arg(long = "config", short = 'c', global = true, value_name = "FILE")]
    config: Vec<PathBuf>,

    /// Log filter: error, warn, info, debug, trace, or a RUST_LOG-style directive list.
    /// Overrides RUST_LOG and the config's service.telemetry.logs.level.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log format on stderr. Overrides the config's service.telemetry.logs.encoding.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogEncoding>,

    /// Run as an AWS Lambda extension (automatic when AWS_LAMBDA_RUNTIME_API is set):
    /// register with the Extensions API, flush after every invocation, exit on SHUTDOWN.
    /// Without --config, the configuration comes from $AURASTREAM_CONFIG, else the
    /// built-in Lambda default (see `print-default-config --lambda`).
    #[arg(long)]
    lambda_extension: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the collector (the default when no subcommand is given).
    Run,
    /// Check configuration files without starting anything; exits non-zero on the first
    /// problem, naming the file, the option's path and the line.
    Validate {
        /// Files to check together (later ones override earlier ones, as with --config).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also ask AWS whether the account is ready for what the configuration sends:
        /// X-Ray Transaction Search (GetTraceSegmentDestination) in each region OTLP
        /// traces go to. Problems are warnings, with the fix; they do not fail validation.
        #[arg(long)]
        check_aws: bool,
    },
    /// Exit 0 if a collector's health endpoint answers HTTP at all, 1 otherwise: the
    /// container health check, so the image needs no curl or shell. Any answer counts (a
    /// 503 too): a failing destination is alarmed on, not fixed by a restart that would
    /// lose the queue.
    Healthcheck {
        /// host:port of the `health_check` extension.
        #[arg(default_value = "127.0.0.1:13133")]
        address: String,
        /// The extension has a `tls` block: ask over HTTPS, trusting this CA (PEM).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// A client certificate (PEM) for an extension that requires one (`client_ca_file`).
        #[arg(long, requires = "key_file")]
        cert_file: Option<PathBuf>,
        /// The key of `--cert-file`.
        #[arg(long, requires = "cert_file")]
        key_file: Option<PathBuf>,
        /// HTTPS without checking the extension's certificate (a liveness probe of a
        /// collector on the same host).
        #[arg(long)]
        insecure_skip_verify: bool,
    },
    /// Print the built-in default configuration.
    PrintDefaultConfig {
        /// Print the Lambda extension's default instead.
        #[arg(long)]
        lambda: bool,
    },
}

fn main() -> ExitCode {
    // One TLS provider (`net::crypto_provider`: aws-lc-rs, or ring in the lean layer),
    // named explicitly: if a build links both, rustls cannot pick a process default on its
    // own and the first HTTPS connection of a library relying on it would panic.
    let _ = aurastream_collector::net::crypto_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintDefaultConfig { lambda }) => {
            if lambda {
                print!("{}", config::LAMBDA_DEFAULT_CONFIG);
            } else {
                print!("{}", config::DEFAULT_CONFIG);
            }
            ExitCode::SUCCESS
        }
        Some(Command::Healthcheck {
            address,
            ca_file,
            cert_file,
            key_file,
            insecure_skip_verify,
        }) => {
            let tls = ClientTlsConfig {
                ca_file,
                cert_file,
                key_file,
                insecure_skip_verify,
                ..Default::default()
            };
            match health_answers(&address, &tls) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{address}: no answer from /health: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Validate { files, check_aws }) => {
            let files = if files.is_empty() { cli.config } else { files };
            match config::load(&files) {
                Ok(c) => {
                    for warning in c.warnings() {
                        eprintln!("warning: {warning}");
                    }
                    let what = if files.is_empty() {
                        "built-in default".to_string()
                    } else {
                        files
                            .iter()
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" + ")
                    };
                    println!(
                        "{what}: valid ({} receivers, {} processors, {} exporters, {} pipelines)",
                        c.receivers.0.len(),
                        c.processors.0.len(),
                        c.exporters.0.len(),
                        c.service.pipelines.len()
                    );
                    if check_aws {
                        check_aws_readiness(&c);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("invalid configuration: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Run) | None => {
            let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API")
                .ok()
                .filter(|v| !v.is_empty());
            match (runtime_api, cli.lambda_extension) {
                (Some(runtime_api), _) => run_lambda(lambda_extension::Options {
                    runtime_api,
                    config_files: cli.config,
                    log_level: cli.log_level,
                    log_format: cli.log_format,
                }),
                (None, true) => {
                    eprintln!(
                        "--lambda-extension needs AWS_LAMBDA_RUNTIME_API (host:port of the \
                         Lambda Runtime API), which Lambda sets for every extension"
                    );
                    ExitCode::from(2)
                }
                (None, false) => run(cli.config, cli.log_level, cli.log_format),
            }
        }
    }
}

/// `validate --check-aws`: Transaction Search in every region an exporter sends OTLP
/// traces to; one line each, on stdout when ready and stderr when not.
fn check_aws_readiness(config: &config::Config) {
    let regions: std::collections::BTreeSet<String> = config
        .exporters
        .0
        .values()
        .flat_map(|e| e.factory().transaction_search_regions())
        .collect();
    if regions.is_empty() {
        println!("check-aws: no exporter sends OTLP traces to X-Ray; nothing to check");
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: check-aws: cannot start a runtime: {e}");
            return;
        }
    };
    for region in regions {
        match runtime.block_on(aurastream_collector::aws::transaction_search::check(
            &region,
        )) {
            Ok(r @ aurastream_collector::aws::transaction_search::Readiness::Ready) => {
                println!("check-aws: {}", r.describe(&region));
            }
            Ok(r) => eprintln!("check-aws: {}", r.describe(&region)),
            Err(e) => eprintln!("warning: check-aws: {e}"),
        }
    }
}

/// One `GET /health` over plain TCP, with a 3 s bound on each step; Ok if the answer is HTTP.
fn health_answers(address: &str, tls: &ClientTlsConfig) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(3);
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no such address"))?;
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET /health HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut head = [0u8; 5];
    if tls.enabled(false) {
        let mut config = (*tls.load().map_err(std::io::Error::other)?).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connection =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(connection, stream);
        stream.write_all(request.as_bytes())?;
        stream.read_exact(&mut head)?;
    } else {
        let mut stream = stream;
        stream.write_all(request.as_bytes())?;
        stream.read_exact(&mut head)?;
    }
    if &head == b"HTTP/" {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the answer is not HTTP",
        ))
    }
}

/// Extension mode: the Lambda lifecycle decides when to flush and when to exit.
fn run_lambda(options: lambda_extension::Options) -> ExitCode {
    // What could be flushed was flushed before the SHUTDOWN deadline.
    block_on_until_signal(std::time::Duration::from_millis(50), |stop| {
        lambda_extension::run(options, stop)
    })
}

/// Runs `main` on a multi-threaded runtime, cancelling its token on SIGTERM/SIGINT.
///
/// `main` has drained what it could before returning; a write still blocked (a stdout
/// nobody reads, a hung disk) must not keep the process alive, so the runtime is given
/// only `grace` to wind down.
fn block_on_until_signal<F>(
    grace: std::time::Duration,
    main: impl FnOnce(CancellationToken) -> F,
) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(wait_for_signal(stop.clone()));
        main(stop).await
    });
    runtime.shutdown_timeout(grace);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    files: Vec<PathBuf>,
    log_level: Option<String>,
    log_format: Option<LogEncoding>,
) -> ExitCode {
    let config = match config::load(&files) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = &config.service.telemetry.logs;
    telemetry::logging::init(
        log_level.as_deref(),
        &logs.level,
        log_format.unwrap_or(logs.encoding),
    );
    if files.is_empty() {
        tracing::info!(
            "no --config given: running the built-in default (see `aurastream-collector print-default-config`)"
        );
    }
    for (id, e) in &config.exporters.0 {
        if let Some(file) = e.factory().output_file() {
            let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
            tracing::info!(exporter = %id, path = %path.display(), "writing to file");
        }
    }
    block_on_until_signal(std::time::Duration::from_millis(200), |stop| {
        service::run(config, stop)
    })
}

async fn wait_for_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the collector with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    stop.cancel();
}
