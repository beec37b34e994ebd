//! CLI glue for network hardening: `vigil ports`, `vigil firewall`, `vigil catalog` (the
//! vigil-netpolicy crate) and `vigil audit` (the vigil-netaudit crate). All logic lives in
//! those crates; this file only maps arguments and prints results.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use vigil_netaudit::{self as audit, ProbeOptions};
use vigil_netpolicy::firewall::{self, FirewallFormat};
use vigil_netpolicy::manifest::{self, Format};
use vigil_netpolicy::{Catalog, Endpoint, Site, SiteError, catalog};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleFormat {
    Nftables,
    Iptables,
    Powershell,
}

/// `vigil ports`: every port the configured deployment opens or connects to.
#[derive(Debug, Args)]
pub struct PortsArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,
}

/// `vigil firewall`: least-privilege rules for every host of a site.
#[derive(Debug, Args)]
pub struct FirewallArgs {
    /// Site file: zones with subnets, hosts with roles (see docs/network-hardening.md).
    #[arg(long)]
    pub site: PathBuf,
    #[arg(long, value_enum, default_value = "nftables")]
    pub format: RuleFormat,
    /// Write one file per router/host into this directory instead of printing them.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// `vigil catalog`: third-party port catalogs.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: CatalogCommand,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the systems and their roles.
    List,
    /// Show every role and port of one system.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: TableFormat,
    },
}

/// `vigil audit`: listening sockets vs the manifest, and probes of cameras and servers.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Also probe every host of this site file.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Extra trusted CA certificates (PEM); may be repeated. The installation's own CA
    /// (data_dir/pki/ca.crt) is always trusted.
    #[arg(long = "ca")]
    pub ca: Vec<PathBuf>,
    /// Do not trust the system CA bundle.
    #[arg(long)]
    pub no_system_ca: bool,
    /// SHA-256 fingerprints (hex) of pinned self-signed certificates; may be repeated.
    #[arg(long = "pin")]
    pub pin: Vec<String>,
    /// Skip the comparison of listening sockets with the manifest.
    #[arg(long)]
    pub no_listeners: bool,
    /// Seconds per connection step.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    /// Endpoints probed at once; 0 probes all at once (up to 1024), always bounded by the
    /// open-file limit.
    #[arg(long, default_value_t = 0)]
    pub concurrency: usize,
}

fn table_format(f: TableFormat) -> Format {
    match f {
        TableFormat::Table => Format::Table,
        TableFormat::Json => Format::Json,
        TableFormat::Csv => Format::Csv,
    }
}

/// A site file error, pointing at the catalog entries that list what the file may say there.
fn site_error(e: SiteError) -> anyhow::Error {
    if e.see_systems.is_empty() {
        return e.into();
    }
    let commands: Vec<String> = e
        .see_systems
        .iter()
        .map(|s| format!("`vigil catalog show {s}`"))
        .collect();
    anyhow::anyhow!("{e}; see {}", commands.join(", "))
}

pub fn run_ports(
    args: &PortsArgs,
    config: &vigil_config::Config,
    cameras: &[Endpoint],
) -> anyhow::Result<i32> {
    let rows = manifest::vigil_manifest(config, cameras);
    print!("{}", manifest::render(&rows, table_format(args.format)));
    if matches!(args.format, TableFormat::Table) {
        print!(
            "{}",
            manifest::render_off(&vigil_netpolicy::vigil::off(config))
        );
    }
    Ok(0)
}

pub fn run_firewall(args: &FirewallArgs, config: &vigil_config::Config) -> anyhow::Result<i32> {
    let catalog = Catalog::with_vigil(config)?;
    let site = Site::load(&args.site, &catalog).map_err(site_error)?;
    let format = match args.format {
        RuleFormat::Nftables => FirewallFormat::Nftables,
        RuleFormat::Iptables => FirewallFormat::Iptables,
        RuleFormat::Powershell => FirewallFormat::Powershell,
    };
    let files = firewall::generate(&site, &catalog, format);
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for f in &files {
                let path = dir.join(&f.file_name);
                std::fs::write(&path, &f.text)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {} ({})", path.display(), f.target);
            }
        }
        None => print!("{}", firewall::concat(&files)),
    }
    Ok(0)
}

pub fn run_catalog(args: &CatalogArgs, config: &vigil_config::Config) -> anyhow::Result<i32> {
    let catalog = Catalog::with_vigil(config)?;
    match &args.command {
        CatalogCommand::List => print!("{}", catalog.list_text()),
        CatalogCommand::Show { name, format } => {
            let Some(system) = catalog.system(name) else {
                let names: Vec<&str> = catalog.systems.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "no system `{name}` in the catalog; known: {}",
                    names.join(", ")
                );
            };
            match format {
                TableFormat::Table => print!("{}", catalog::show_text(system)),
                f => print!(
                    "{}",
                    manifest::render(&manifest::system_rows(system), table_format(*f))
                ),
            }
        }
    }
    Ok(0)
}

/// Returns 1 when a high-severity finding exists (for CI and cron).
pub fn run_audit(
    args: &AuditArgs,
    config: &vigil_config::Config,
    cameras: Vec<Endpoint>,
) -> anyhow::Result<i32> {
    // The installation's own CA is trusted like the system's, so Vigil's generated server
    // certificate is not reported as untrusted; --ca adds more.
    let mut ca_files = args.ca.clone();
    let installation_ca = vigil_app::setup::installation_ca(config);
    if installation_ca.is_file() && !ca_files.contains(&installation_ca) {
        ca_files.push(installation_ca);
    }
    let mut opts = ProbeOptions::with_ca_files(!args.no_system_ca, &ca_files)?;
    opts.timeout = std::time::Duration::from_secs(args.timeout.max(1));
    opts.concurrency = args.concurrency;
    opts.pinned = args.pin.clone();
    let mut endpoints = audit::config_endpoints(config);
    endpoints.extend(cameras);
    if let Some(path) = &args.site {
        let catalog = Catalog::with_vigil(config)?;
        let site = Site::load(path, &catalog).map_err(site_error)?;
        endpoints.extend(audit::site_endpoints(&site, &catalog));
    }
    let expected = audit::listeners::expected_from_config(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(audit::run(
        endpoints,
        (!args.no_listeners).then_some(expected.as_slice()),
        &opts,
    ))?;
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.exit_code())
}
