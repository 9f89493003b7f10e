//! Flags → config → app → serve. Everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use siembox_exporter::cli::{Cli, LogFormat};
use siembox_exporter::server::web_config::WebSecurity;
use siembox_exporter::{App, AppOptions, Config};
use std::time::Duration;

fn main() -> std::process::ExitCode {
    siembox_exporter::alloc::return_large_buffers_to_the_os();
    let mut cli = Cli::parse();
    if let Some(shell) = cli.completions {
        siembox_exporter::cli::write_completions(shell, &mut std::io::stdout());
        return std::process::ExitCode::SUCCESS;
    }
    if cli.man {
        return match siembox_exporter::cli::write_man_page(&mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(_) => std::process::ExitCode::from(1),
        };
    }
    if let Some(command) = cli.command.take() {
        return report::run(command, cli.config_file.as_deref());
    }
    init_logging(&cli);
    let config = match &cli.config_file {
        Some(path) => Config::load_file(path),
        None => Ok(Config::builtin()),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return std::process::ExitCode::from(1);
        }
    };
    let origin = cli
        .config_file
        .as_ref()
        .map_or("<built-in>".into(), |p| p.display().to_string());
    for line in siembox_exporter::config::format_warnings(&origin, &config.warnings).lines() {
        eprintln!("warning: {line}");
    }
    if cli.config_check {
        // Serving would start with these files unreadable (probes using them fail); a check
        // that is run to find such mistakes says so by its exit status.
        if !config.unreadable_files.is_empty() {
            eprintln!(
                "error: {origin}: the configuration names files this user cannot read: {}",
                config.unreadable_files.join(", ")
            );
            return std::process::ExitCode::from(1);
        }
        println!(
            "{origin}: configuration is valid ({} modules)",
            config.modules.len()
        );
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let result = runtime.block_on(run(cli, config));
    // Dropping the runtime would wait for any blocking task without limit; the grace period is
    // over by now, so give them a moment only.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let options = AppOptions {
        timeout_offset: cli.timeout_offset,
        schedule_shard: cli.schedule_shard,
        shutdown_timeout: cli.shutdown_timeout,
        max_connections: cli.max_connections as usize,
        auto_reload_interval: cli
            .config_enable_auto_reload
            .then_some(cli.config_auto_reload_interval),
        ..AppOptions::default()
    };
    let web = match &cli.web_config_file {
        Some(path) => Some(std::sync::Arc::new(
            WebSecurity::load(path).map_err(|e| anyhow::anyhow!("invalid web config\n{e}"))?,
        )),
        None => None,
    };
    let app = App::new(config, cli.config_file.clone(), options);
    let listener = tokio::net::TcpListener::bind(cli.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen_address))?;
    tracing::info!(address = %cli.listen_address, config = ?cli.config_file, "siembox-exporter listening");

    let reload_app = app.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reload_app.reload_shared().await;
        }
    });
    siembox_exporter::server::serve_with(app, listener, web, shutdown_signal()).await;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
}

/// `audit` and `probe`: run once, print a report, exit with its status.
mod report {
    use siembox_exporter::cli::Command;
    use siembox_exporter::report::{self, exit, style, OutputFormat};
    use siembox_exporter::Config;
    use std::io::{IsTerminal, Write};
    use std::path::Path;
    use std::process::ExitCode;

    pub fn run(command: Command, config_file: Option<&Path>) -> ExitCode {
        // Warnings only: the report itself says what went wrong.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
        let config = match config_file {
            Some(path) => Config::load_file(path),
            None => Ok(Config::builtin()),
        };
        let config = match config {
            Ok(c) => c,
            Err(e) => return usage_error(&format!("invalid configuration\n{e}")),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime starts");
        let code = runtime.block_on(async {
            match command {
                Command::Audit(args) => audit(&config, args).await,
                Command::Probe(args) => probe(&config, args).await,
            }
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        code
    }

    async fn audit(config: &Config, args: siembox_exporter::cli::AuditArgs) -> ExitCode {
        let module = match report::audit::pick_module(config, args.module.as_deref()) {
            Ok(m) => m,
            Err(e) => return usage_error(&e),
        };
        if let Err(e) = report::audit::check_servers(config, &args.servers) {
            return usage_error(&e);
        }
        let outcomes = report::audit::run(config, &module, &args.servers).await;
        let text = match args.output {
            OutputFormat::Json => report::audit::render_json(&module, &outcomes, args.fail_on),
            OutputFormat::Text => {
                report::audit::render_text(&module, &outcomes, style_for(args.color))
            }
        };
        print(&text);
        ExitCode::from(report::audit::exit_code(&outcomes, args.fail_on))
    }

    async fn probe(config: &Config, args: siembox_exporter::cli::ProbeArgs) -> ExitCode {
        let outcome = match report::probe::run(config, &args.module, &args.target).await {
            Ok(o) => o,
            Err(e) => return usage_error(&e),
        };
        let module = &config.modules[&args.module];
        let text = match args.output {
            OutputFormat::Json => {
                report::probe::render_json(&outcome, &args.module, module, &args.target)
            }
            OutputFormat::Text => report::probe::render_text(
                &outcome,
                &args.module,
                module,
                &args.target,
                style_for(args.color),
            ),
        };
        print(&text);
        ExitCode::from(report::probe::exit_code(&outcome))
    }

    fn style_for(choice: style::ColorChoice) -> style::Style {
        let no_color = std::env::var("NO_COLOR").ok();
        style::Style {
            color: style::wants_color(choice, std::io::stdout().is_terminal(), no_color.as_deref()),
        }
    }

    fn print(text: &str) {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    fn usage_error(message: &str) -> ExitCode {
        eprintln!("error: {message}");
        ExitCode::from(exit::USAGE)
    }
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.with_ansi(false).init(),
    }
}
