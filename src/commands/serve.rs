//! `voxnav serve`: the server. Its parts, wired here and nowhere else:
//!
//! - the SIP/RTP driver (`net`), the media driver (`net::media`);
//! - with a dialplan: the hotline registry (hot reload), the speech engines on a shared core
//!   budget, the turn detector, and a call driver task per answered call (`call::driver`);
//! - the observers of every report: metrics, the live view, call records, the stdout lines;
//! - the admin API;
//! - one shutdown for all: SIGTERM or Ctrl-C stops the reload watcher and the prompt warm-up,
//!   refuses ringing calls, hangs up the rest and exits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use voxnav::call::driver::{PromptCache, Services};
use voxnav::call::hotlines::Hotlines;
use voxnav::call::transfer::AgentDirectory;
use voxnav::call::turn::energy::{Endpointer, EndpointerConfig};
use voxnav::call::turn::model::{ModelTurn, TurnConfig};
use voxnav::call::turn::{DetectorFactory, EndOfTurnModel};
use voxnav::config::AsrEngine;
use voxnav::dialplan::model::{DetectorKind, TurnOverrides};
use voxnav::dialplan::registry::HotlineRegistry;
use voxnav::models::ModelPaths;
use voxnav::net::media::MediaEngine;
use voxnav::ops::db::Database;
use voxnav::ops::records::WriterConfig;
use voxnav::ops::{
    admin::AdminConfig, admin::AdminHotline, lines::StdoutLines, live::LiveView, metrics::Metrics,
};
use voxnav::report::{Observer, Reporter};
use voxnav::speech::turn_models::{SileroModel, SileroVad, SmartTurn};
use voxnav::speech::{
    MoonshineRecognizer, OverflowRecognizer, PiperConfig, Recognizer, WhisperConfig,
    WhisperRecognizer,
};

#[derive(Args)]
pub struct ServeArgs {
    /// Server config file (YAML: sip.listen, sip.max_calls, sip.ring_ms, media.rtp_ports, ...);
    /// options given here override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SIP address for UDP and TCP, IPv4 or IPv6 (port 0 picks a free port) [default: 0.0.0.0:5060].
    #[arg(long)]
    sip_listen: Option<std::net::SocketAddr>,
    /// SIP over TLS on this address too (config `sip.tls.listen`); needs --tls-cert and
    /// --tls-key (PEM files, reloaded when they change).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<std::net::SocketAddr>,
    /// The TLS certificate chain (PEM; config `sip.tls.cert`).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM; config `sip.tls.key`).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Calls at once; more INVITEs get 503 with Retry-After [default: 100].
    #[arg(long)]
    max_calls: Option<usize>,
    /// RTP port range, LOW-HIGH (even ports for RTP, the next odd one for RTCP) [default: 10000-20000].
    #[arg(long, value_parser = voxnav::media::ports::PortPool::parse)]
    rtp_ports: Option<voxnav::media::ports::PortPool>,
    /// Milliseconds to ring (180 Ringing) before answering [default: 0].
    #[arg(long)]
    ring_ms: Option<u64>,
    /// Answer calls with this dialplan (speech in, decisions, speech out); without it the
    /// built-in test behaviour answers. The file is reloaded when it changes.
    #[arg(long)]
    dialplan: Option<PathBuf>,
    /// Answer calls to NUMBER (the Request-URI's user, else the To's) with the dialplan in
    /// FILE; repeatable. Numbers not listed get the `--dialplan` hotline, or 404 without one.
    /// Config `hotlines:`.
    #[arg(long, value_name = "NUMBER=FILE")]
    hotline: Vec<NumberedHotline>,
    /// Start the built-in demo order service and point `orders_api` at it.
    #[arg(long)]
    demo_orders: bool,
    /// The agent seat (SIP URI) transfers ring, for every queue the config file does not
    /// map (config `transfer.default`); without one, a transfer goes to the dialplan's
    /// fallback.
    #[arg(long, value_name = "SIP_URI")]
    agent: Option<String>,
    /// Serve the admin HTTP API here: /healthz, /metrics (Prometheus), /dashboard,
    /// /api/... (token). Config `admin.listen`.
    #[arg(long, value_name = "ADDRESS:PORT")]
    admin_listen: Option<std::net::SocketAddr>,
    /// The bearer token /api/ requires (or VOXNAV_ADMIN_TOKEN); without one /api/ is off.
    #[arg(long, env = "VOXNAV_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Call records with transcripts: a SQLite file or a postgres:// URL (schema in
    /// docs/records.md). Config `records.path`; default records/voxnav.db.
    #[arg(long, value_name = "FILE|URL")]
    records: Option<String>,
    /// This server's name, written with each call it records and shown in the cluster view
    /// (config `server_name`; default: the host name). Nodes sharing a PostgreSQL records
    /// database tell their calls apart by it.
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Media encryption: optional (SRTP with SDES keys when the offer is RTP/SAVP),
    /// required (plain RTP offers get 488) or off (config `media.srtp`; default optional).
    #[arg(long, value_parser = voxnav::config::parse_srtp)]
    srtp: Option<voxnav::sip::sdp::SrtpPolicy>,
    /// Another node's admin API (http://ADDRESS:PORT), repeatable: the dashboard's live
    /// calls and /api/cluster/calls show its calls too (config `cluster.peers`).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// The agents file (config `agents`): human agents whose phones register here with
    /// digest; reloaded when it changes (a broken version is refused, the old one kept).
    #[arg(long, value_name = "FILE")]
    agents: Option<PathBuf>,
    /// Keep no call records (config `records.path: off`).
    #[arg(long)]
    no_records: bool,
    /// Count nothing: /metrics then lists the families without values (for measuring
    /// what counting costs; benches/ops_overhead.rs).
    #[arg(long)]
    no_metrics: bool,
    /// Prune call records older than this many days (config `records.retention_days`;
    /// default 90).
    #[arg(long)]
    retention_days: Option<u32>,
    /// Media driver threads (config `media.threads`; default 1: on this 2-core machine one
    /// thread paced 1200 calls at a 0.9-3.2 ms p99 send gap, and a second helped at 1600).
    #[arg(long)]
    media_threads: Option<usize>,
    /// Recognitions that may run at once (config `asr.jobs`; default 2, one per core: each
    /// takes a core, and borrows the other while it is free).
    #[arg(long)]
    asr_jobs: Option<usize>,
    /// The recognizer: whisper or moonshine (config `asr.engine`; default whisper).
    #[arg(long)]
    asr_engine: Option<voxnav::config::AsrEngine>,
    /// With whisper: a request that would wait behind this many others goes to moonshine
    /// instead, or `off` (config `asr.overflow`; default off).
    #[arg(long)]
    asr_overflow: Option<voxnav::config::AsrOverflow>,
}

/// How long stopping waits for the call records writer to catch up.
const RECORDS_FLUSH: Duration = Duration::from_secs(10);

/// How often the dialplan file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

pub fn run(paths: &ModelPaths, args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => voxnav::config::read(path).map_err(anyhow::Error::msg)?,
        None => voxnav::config::ServerConfig::default(),
    };
    if let Some(uri) = &args.agent
        && voxnav::sip::uac::uri_host_port(uri).is_none()
    {
        anyhow::bail!("--agent {uri}: not a sip: URI with a host");
    }
    if let Some(peer) = args.peers.iter().find(|p| !p.starts_with("http://")) {
        anyhow::bail!("--peer {peer}: give another node's admin API, like http://10.0.0.3:8081");
    }
    voxnav::ops::log::init(&file.log).map_err(anyhow::Error::msg)?;
    let (hotline_numbers, default_hotline) = hotline_files(&args, &file);
    let has_hotlines = !hotline_numbers.is_empty() || default_hotline.is_some();
    let records = match (
        args.no_records,
        args.records.as_deref(),
        file.records.clone(),
    ) {
        (true, _, _) | (false, None, Some(None)) => None,
        (false, Some(given), _) => Some(Database::parse(given)),
        (false, None, Some(Some(database))) => Some(database),
        (false, None, None) => Some(Database::parse("records/voxnav.db")),
    }
    .filter(|_| has_hotlines);
    let retention_days = args.retention_days.or(file.retention_days).unwrap_or(90);
    let server_name = (args.server_name.clone().or(file.server_name.clone()))
        .unwrap_or_else(voxnav::ops::live::host_name);

    // The agents' accounts: the file as loaded for the admin API, its digest accounts for
    // the registrar (a reload sends new ones; the nonces' key stays for the run).
    let agents_file = args.agents.clone().or(file.agents.clone());
    let nonce_key = random_secret()?;
    let book = match &agents_file {
        Some(path) => Some(voxnav::agents::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let (agents_tx, agents_rx) =
        tokio::sync::watch::channel(book.as_ref().map(|b| b.digest_config(nonce_key)));
    // The agents' states and phones (the ACD): it learns the phones from the reports.
    let acd = (book.as_ref()).map(|b| {
        Arc::new(voxnav::routing::Acd::new(
            b,
            voxnav::routing::DEFAULT_WRAP_UP,
        ))
    });
    let agent_book = Arc::new(std::sync::Mutex::new(book));
    if let Some(path) = agents_file {
        watch_agents(path, agent_book.clone(), acd.clone(), agents_tx, nonce_key);
    }
    // The observers of every report.
    let mut metrics = Metrics::new();
    if let Some(acd) = &acd {
        metrics.watch_queues(acd.clone());
    }
    let metrics = Arc::new(metrics);
    let live = Arc::new(LiveView::default());
    let mut observers: Vec<Arc<dyn Observer>> = vec![live.clone(), Arc::new(StdoutLines)];
    if !args.no_metrics {
        observers.push(metrics.clone());
    }
    let record_store = match &records {
        Some(database) => Some(voxnav::ops::records::RecordStore::open(
            database,
            WriterConfig {
                retention_days,
                buffer: file
                    .records_buffer
                    .unwrap_or(voxnav::ops::records::DEFAULT_BUFFER),
                server: Some(server_name.clone()),
            },
            metrics.records_health(),
        )?),
        None => None,
    };
    if let Some(store) = &record_store {
        observers.push(Arc::new(store.clone()));
    }
    if let Some(acd) = &acd {
        observers.push(acd.clone());
    }
    let web_phones =
        (acd.as_ref()).map(|acd| Arc::new(voxnav::net::webphone::WebPhones::new(acd.clone())));
    let desk = (acd.as_ref().zip(web_phones.as_ref())).map(|(acd, phones)| {
        Arc::new(voxnav::ops::desk::Desk::new(
            agent_book.clone(),
            acd.clone(),
            live.clone(),
            phones.clone(),
        ))
    });
    if let Some(desk) = &desk {
        observers.push(desk.clone());
    }
    let reporter = Reporter::new(observers);
    if let Some(acd) = &acd {
        acd.report_to(reporter.clone());
    }
    if let Some(desk) = &desk {
        desk.report_to(reporter.clone());
    }
    let media = MediaEngine::start(args.media_threads.or(file.media_threads).unwrap_or(1))?;
    // Callbacks need agents to place them and somewhere to call: started with the runtime.
    let (callbacks, dialer) = match (&acd, &web_phones, &file.callback_uri) {
        (Some(acd), Some(phones), Some(uri)) => {
            let (tx, dialer) = voxnav::call::callback::Dialer::new(
                media.clone(),
                acd.clone(),
                phones.clone(),
                reporter.clone(),
                Duration::from_secs(file.ring_timeout_s.unwrap_or(20)),
                agent_silence(&file),
                uri.clone(),
            );
            (Some(tx), Some(dialer))
        }
        _ => (None, None),
    };

    // What every hotline's calls start with and reach backends through; the admin API's
    // trainers' gate uses the same.
    let (vars, backends) = if !has_hotlines {
        Default::default()
    } else {
        (
            super::dialplan::parse_vars(&[], args.demo_orders)?,
            Arc::new(voxnav::net::backend::Backends::new(&file.backends)?),
        )
    };
    let hotlines = if !has_hotlines {
        None
    } else {
        Some(Arc::new(hotlines(
            paths,
            &hotline_numbers,
            default_hotline.as_ref(),
            &args,
            &file,
            Shared {
                acd: acd.clone(),
                web_phones: web_phones.clone(),
                callbacks,
                vars: vars.clone(),
                backends: backends.clone(),
                reporter: reporter.clone(),
                media: media.clone(),
            },
        )?))
    };
    let ready = Arc::new(AtomicBool::new(false));
    // Draining (SIGUSR1 or POST /api/drain): no new calls, exit when the last call ends.
    let drain = CancellationToken::new();
    let admin = args.admin_listen.or(file.admin_listen).map(|addr| {
        (
            addr,
            AdminConfig {
                token: args.admin_token.clone().filter(|t| !t.is_empty()),
                records: records.clone(),
                hotlines: hotlines.as_ref().map_or_else(Vec::new, |h| {
                    (h.all().iter().enumerate())
                        .map(|(i, s)| AdminHotline {
                            registry: s.registry.clone(),
                            numbers: h.numbers_of(i),
                        })
                        .collect()
                }),
                ready: ready.clone(),
                drain: drain.clone(),
                metrics: metrics.clone(),
                live: live.clone(),
                vars,
                backends,
                server_name: server_name.clone(),
                peers: (args.peers.iter())
                    .map(|p| p.trim_end_matches('/').to_string())
                    .chain(file.peers.iter().cloned())
                    .collect(),
                agents: agent_book.clone(),
                acd: acd.clone(),
                desk: desk.clone(),
            },
        )
    });
    let defaults = voxnav::net::ServeConfig::default();
    let config = voxnav::net::ServeConfig {
        endpoint: voxnav::sip::endpoint::EndpointConfig {
            max_calls: args.max_calls.or(file.max_calls).unwrap_or(100),
            admission: voxnav::sip::admission::Admission {
                trunks: file.trunks.clone(),
                digest: match file.digest.clone() {
                    Some(mut d) => {
                        d.secret = random_secret()?;
                        Some(d)
                    }
                    None => None,
                },
                numbers: hotlines.as_ref().and_then(|h| h.numbers_answered()),
            },
            register: file.register.clone(),
            srtp: args.srtp.or(file.srtp).unwrap_or_default(),
            srtp_required_from: file.srtp_required_from.clone(),
            tls_required_from: file.tls_required_from.clone(),
            ..Default::default()
        },
        rtp_ports: args
            .rtp_ports
            .clone()
            .or(file.rtp_ports.clone())
            .unwrap_or(defaults.rtp_ports),
        ring: Duration::from_millis(args.ring_ms.or(file.ring_ms).unwrap_or(0)),
        calls: hotlines.as_ref().map(|h| call_handler(h.clone())),
        media: Some(media),
        reporter,
        drain: drain.clone(),
        agents: Some(agents_rx),
    };
    let listen = args
        .sip_listen
        .or(file.sip_listen)
        .unwrap_or_else(|| "0.0.0.0:5060".parse().unwrap());
    let tls = match (&args.tls_listen, &args.tls_cert, &args.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((
            *addr,
            voxnav::net::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        )),
        _ => file.tls.clone(),
    };
    let tls = match tls {
        Some((addr, files)) => Some((addr, voxnav::net::tls::Certificates::load(files)?)),
        None => None,
    };
    let served = serve(listen, tls, config, admin, hotlines, ready, dialer);
    // The last calls' records reach the database before the process exits (a drained node
    // of a cluster stops here); a database that is down gets a bounded wait, then the count.
    if let Some(store) = &record_store
        && !store.flush(RECORDS_FLUSH)
    {
        eprintln!(
            "voxnav: call records {}: not all written at exit ({} dropped in all)",
            store.database,
            store.health.dropped.get()
        );
    }
    served
}

/// Reloads the agents file when it changes (checked every `RELOAD_POLL`): a valid version
/// replaces the accounts (the registrar keeps the bindings of agents still listed), a broken
/// one is refused with its problems and the accounts in use stay.
fn watch_agents(
    path: PathBuf,
    book: Arc<std::sync::Mutex<Option<voxnav::agents::AgentBook>>>,
    acd: Option<Arc<voxnav::routing::Acd>>,
    accounts: tokio::sync::watch::Sender<Option<voxnav::sip::digest::DigestConfig>>,
    nonce_key: [u8; 32],
) {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    std::thread::Builder::new()
        .name("agents-reload".into())
        .spawn(move || {
            while !accounts.is_closed() {
                std::thread::sleep(RELOAD_POLL);
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match voxnav::agents::load_file(&path) {
                    Ok(new) => {
                        println!(
                            "voxnav: agents file {} reloaded: {} agents",
                            path.display(),
                            new.agents.len()
                        );
                        let _ = accounts.send(Some(new.digest_config(nonce_key)));
                        if let Some(acd) = &acd {
                            acd.set_agents(&new);
                        }
                        *book.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
                    }
                    Err(e) => println!(
                        "voxnav: agents file {} refused, the accounts in use stay:\n{e}",
                        path.display()
                    ),
                }
            }
        })
        .expect("a thread for the agents file");
}

/// `transfer.agent_silence_s` (default 10 s; 0: never).
fn agent_silence(file: &voxnav::config::ServerConfig) -> Option<Duration> {
    let s = file.agent_silence_s.unwrap_or(10);
    (s > 0).then(|| Duration::from_secs(s))
}

/// 32 random bytes from the kernel: the key of this run's digest nonces.
fn random_secret() -> Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom for the digest nonces' key")?;
    Ok(secret)
}

/// The hotlines to answer: `--dialplan` (the default) and `--hotline NUMBER=FILE` given on
/// the command line replace the config file's `hotlines:`.
fn hotline_files(
    args: &ServeArgs,
    file: &voxnav::config::ServerConfig,
) -> (BTreeMap<String, PathBuf>, Option<PathBuf>) {
    if args.dialplan.is_some() || !args.hotline.is_empty() {
        let numbers = args
            .hotline
            .iter()
            .map(|h| (h.number.clone(), h.file.clone()));
        (numbers.collect(), args.dialplan.clone())
    } else {
        (file.hotlines.clone(), file.default_hotline.clone())
    }
}

/// `--hotline NUMBER=FILE`.
#[derive(Debug, Clone)]
pub struct NumberedHotline {
    number: String,
    file: PathBuf,
}

impl std::str::FromStr for NumberedHotline {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (number, file) = s.split_once('=').ok_or_else(|| {
            format!("`{s}`: give NUMBER=FILE, e.g. 4001=dialplans/hotline-zh.yaml")
        })?;
        let number = voxnav::sip::identity::clean_dialled(number)
            .ok_or_else(|| format!("`{number}` is not a number or SIP user"))?;
        Ok(Self {
            number,
            file: file.into(),
        })
    }
}

/// What every hotline's calls share besides the engines.
struct Shared {
    acd: Option<Arc<voxnav::routing::Acd>>,
    web_phones: Option<Arc<voxnav::net::webphone::WebPhones>>,
    callbacks: Option<tokio::sync::mpsc::UnboundedSender<voxnav::call::callback::CallbackRequest>>,
    vars: BTreeMap<String, String>,
    backends: Arc<voxnav::net::backend::Backends>,
    reporter: Reporter,
    media: Arc<MediaEngine>,
}

/// Loads every hotline (a file listed under several numbers once) on shared engines.
fn hotlines(
    paths: &ModelPaths,
    numbers: &BTreeMap<String, PathBuf>,
    default: Option<&PathBuf>,
    args: &ServeArgs,
    file: &voxnav::config::ServerConfig,
    shared: Shared,
) -> Result<Hotlines> {
    let mut engines = Engines::start(paths, args, file)?;
    let Shared {
        acd,
        web_phones,
        callbacks,
        vars,
        backends,
        reporter,
        media,
    } = shared;
    let agents = AgentDirectory {
        queues: file.agent_queues.clone(),
        default: args.agent.clone().or(file.agent_default.clone()),
        refer: file.refer_queues.clone(),
        ring_timeout: Duration::from_secs(file.ring_timeout_s.unwrap_or(20)),
        queue_wait: Duration::from_secs(file.queue_wait_s.unwrap_or(60)),
        announce_every: Duration::from_secs(file.announce_every_s.unwrap_or(30)),
        agent_silence: agent_silence(file),
        assist: file.assist.unwrap_or(true),
        warm: file.warm.unwrap_or(false),
        messages_dir: (file.messages_dir.clone()).unwrap_or_else(|| "records/messages".into()),
        callbacks,
        acd,
        web_phones,
    };
    let mut all: Vec<Arc<Services>> = Vec::new();
    let mut loaded: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut index_of = |dialplan: &PathBuf| -> Result<usize> {
        // The same file under two numbers is one hotline (one registry, one reload).
        let key = std::fs::canonicalize(dialplan)
            .with_context(|| format!("dialplan {}", dialplan.display()))?;
        if let Some(&i) = loaded.get(&key) {
            return Ok(i);
        }
        let registry = Arc::new(
            HotlineRegistry::load(dialplan, engines.embedder.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_reporter(reporter.clone()),
        );
        let plan = registry.current();
        let asr = engines.recognizer(&plan.plan)?;
        let tts = engines.synthesizer(&plan.plan.voice)?;
        tracing::info!(
            dialplan = %dialplan.display(),
            hotline = %plan.plan.name,
            asr = %asr.describe(),
            tts = %tts.describe(),
            "the dialplan answers calls"
        );
        all.push(Arc::new(Services {
            registry,
            asr,
            tts,
            detector: engines.detector.clone(),
            turn_model: engines.turn_model.clone(),
            vars: vars.clone(),
            prompts: PromptCache::default(),
            agents: agents.clone(),
            backends: backends.clone(),
            media: media.clone(),
            reporter: reporter.clone(),
        }));
        loaded.insert(key, all.len() - 1);
        Ok(all.len() - 1)
    };
    let default = default.map(&mut index_of).transpose()?;
    let mut by_number = BTreeMap::new();
    for (number, dialplan) in numbers {
        by_number.insert(number.clone(), index_of(dialplan)?);
    }
    Ok(Hotlines::new(all, by_number, default)?)
}

/// The engines hotlines share: one core budget, the embedder, the turn detector, and a
/// recognizer per recognition setting (model, language, prompt) and a synthesiser per voice,
/// each made when the first hotline needs it.
struct Engines<'a> {
    paths: &'a ModelPaths,
    cores: Arc<voxnav::speech::gate::JobGate>,
    whisper: WhisperConfig,
    engine: AsrEngine,
    overflow: Option<usize>,
    embedder: Arc<dyn voxnav::nlu::intent::Embedder>,
    detector: DetectorFactory,
    turn_model: Option<Arc<dyn EndOfTurnModel>>,
    recognizers: BTreeMap<(String, String, Option<String>), Arc<dyn Recognizer>>,
    synthesizers: BTreeMap<String, Arc<dyn voxnav::speech::Synthesizer>>,
}

impl<'a> Engines<'a> {
    fn start(
        paths: &'a ModelPaths,
        args: &ServeArgs,
        file: &voxnav::config::ServerConfig,
    ) -> Result<Self> {
        let budget = voxnav::speech::CoreBudget::detect();
        let whisper = WhisperConfig {
            jobs: args
                .asr_jobs
                .or(file.asr_jobs)
                .unwrap_or(budget.cores)
                .max(1),
            ..Default::default()
        };
        // Every engine job takes its threads from one gate of a slot per core: jobs queue
        // for cores, threads never exceed them.
        budget.check_shared(&whisper, &PiperConfig::default())?;
        // One slot per core, shared: a recognition borrows the second core while TTS is idle.
        let cores = Arc::new(voxnav::speech::gate::JobGate::new(budget.cores, 4096));
        let (detector, turn_model) = turn_detector(paths, file.turn, cores.clone())?;
        Ok(Self {
            paths,
            embedder: voxnav::dialplan::cli::embedder(paths)?,
            cores,
            whisper,
            engine: args
                .asr_engine
                .or(file.asr_engine)
                .unwrap_or(AsrEngine::Whisper),
            overflow: args
                .asr_overflow
                .map(|o| o.0)
                .or(file.asr_overflow)
                .flatten(),
            detector,
            turn_model,
            recognizers: BTreeMap::new(),
            synthesizers: BTreeMap::new(),
        })
    }

    /// The recognizer for a dialplan's `asr_model`, `language` and `asr: prompt`.
    fn recognizer(
        &mut self,
        plan: &voxnav::dialplan::model::Dialplan,
    ) -> Result<Arc<dyn Recognizer>> {
        let whisper = WhisperConfig {
            model: plan.asr_model.parse().map_err(anyhow::Error::msg)?,
            language: voxnav::dialplan::engine::language_code(plan.language).into(),
            prompt: plan.asr_prompt.clone(),
            ..self.whisper.clone()
        };
        let key = (
            plan.asr_model.clone(),
            whisper.language.clone(),
            whisper.prompt.clone(),
        );
        if let Some(r) = self.recognizers.get(&key) {
            return Ok(r.clone());
        }
        let (paths, cores) = (self.paths, self.cores.clone());
        let language = whisper.language.clone();
        let moonshine = || -> Result<Arc<dyn Recognizer>> {
            // The packaged Moonshine model hears English only.
            anyhow::ensure!(
                language == "en",
                "asr: moonshine hears English only, and hotline `{}` speaks `{language}`; use whisper",
                plan.name
            );
            Ok(Arc::new(
                MoonshineRecognizer::new(paths, whisper.jobs, whisper.max_queue)?
                    .with_shared_cores(cores.clone()),
            ))
        };
        let mut asr: Arc<dyn Recognizer> = match self.engine {
            AsrEngine::Moonshine => moonshine()?,
            AsrEngine::Whisper => {
                let primary: Arc<dyn Recognizer> = Arc::new(
                    WhisperRecognizer::new(paths, whisper.clone())?
                        .with_shared_cores(cores.clone()),
                );
                match self.overflow {
                    Some(when_waiting) => Arc::new(OverflowRecognizer {
                        primary,
                        light: moonshine()?,
                        when_waiting,
                    }),
                    None => primary,
                }
            }
        };
        // Degradation tests: VOXNAV_FAULT_ASR=fail or slow:MS (see speech/fault.rs).
        if let Some(fault) =
            voxnav::speech::fault::AsrFault::from_env().map_err(anyhow::Error::msg)?
        {
            tracing::warn!("ASR fault injected: {fault:?}");
            asr = Arc::new(voxnav::speech::fault::FaultyRecognizer { inner: asr, fault });
        }
        self.recognizers.insert(key, asr.clone());
        Ok(asr)
    }

    /// The synthesiser of a voice, chosen at start (a reload that changes `voice:` takes
    /// effect on the next start; the reload logs it).
    fn synthesizer(&mut self, voice: &str) -> Result<Arc<dyn voxnav::speech::Synthesizer>> {
        if let Some(s) = self.synthesizers.get(voice) {
            return Ok(s.clone());
        }
        let tts = voxnav::speech::synthesizer_for(
            self.paths,
            voice,
            PiperConfig::default(),
            Some(self.cores.clone()),
        )?;
        self.synthesizers.insert(voice.to_string(), tts.clone());
        Ok(tts)
    }
}

/// Each call's turn detector: the server's `turn:` settings, then its hotline's. The model
/// detector's models are loaded once (Silero's session is shared, each call keeps its own
/// state; Smart Turn runs on the shared core budget); the energy one needs none.
fn turn_detector(
    paths: &ModelPaths,
    server: TurnOverrides,
    cores: Arc<voxnav::speech::gate::JobGate>,
) -> Result<(DetectorFactory, Option<Arc<dyn EndOfTurnModel>>)> {
    let merge = move |hotline: &TurnOverrides| TurnOverrides {
        detector: hotline.detector.or(server.detector),
        pause_ms: hotline.pause_ms.or(server.pause_ms),
        complete_threshold: hotline.complete_threshold.or(server.complete_threshold),
        end_silence_ms: hotline.end_silence_ms.or(server.end_silence_ms),
        digits_end_silence_ms: hotline
            .digits_end_silence_ms
            .or(server.digits_end_silence_ms),
        barge_in_ms: hotline.barge_in_ms.or(server.barge_in_ms),
        max_turn_ms: hotline.max_turn_ms.or(server.max_turn_ms),
    };
    let vad = SileroModel::load(paths)?;
    let smart_turn: Arc<dyn EndOfTurnModel> =
        Arc::new(SmartTurn::load(paths)?.with_shared_cores(cores));
    let factory: DetectorFactory = Arc::new(move |hotline: &TurnOverrides| {
        let o = merge(hotline);
        match o.detector.unwrap_or(DetectorKind::Model) {
            DetectorKind::Model => Box::new(ModelTurn::new(
                SileroVad::new(vad.clone()),
                TurnConfig::default().with(&o),
            )),
            DetectorKind::Energy => Box::new(Endpointer::new(EndpointerConfig::default())),
        }
    });
    Ok((factory, Some(smart_turn)))
}

/// Each answered call runs its hotline's dialplan on its own task.
fn call_handler(hotlines: Arc<Hotlines>) -> voxnav::net::CallHandler {
    Arc::new(move |call| {
        // The endpoint answers only numbers a hotline takes (404 otherwise), and an agent's
        // feature code (`*2`, no hotline's number), which any hotline's engines can say.
        let services = (hotlines.for_number(call.dialled.as_deref()))
            .or_else(|| call.agent.as_ref().and(hotlines.all().first()))
            .cloned();
        Box::pin(async move {
            match services {
                Some(services) => voxnav::call::driver::run(services, call).await,
                None => (call.hangup)("no hotline answers this number".into()),
            }
        })
    })
}

fn serve(
    listen: std::net::SocketAddr,
    tls: Option<(std::net::SocketAddr, voxnav::net::tls::Certificates)>,
    config: voxnav::net::ServeConfig,
    admin: Option<(std::net::SocketAddr, AdminConfig)>,
    hotlines: Option<Arc<Hotlines>>,
    ready: Arc<AtomicBool>,
    dialer: Option<voxnav::call::callback::Dialer>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let mut listeners = voxnav::net::SipListeners::bind(listen).await?;
        let local = listeners.local_addr()?;
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("voxnav: SIP listening on udp+tcp {local}");
        if let Some((addr, certificates)) = tls {
            listeners.bind_tls(addr, certificates).await?;
            if let Some(tls) = listeners.tls_local_addr() {
                println!("voxnav: SIP over TLS listening on {tls}");
            }
        }
        if let Some((addr, admin)) = admin {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin API on {addr}"))?;
            println!("voxnav: admin API on http://{}", listener.local_addr()?);
            tokio::spawn(async move {
                if let Err(e) = voxnav::ops::admin::serve(listener, admin).await {
                    tracing::error!("admin API stopped: {e}");
                }
            });
        }
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        let drain = config.drain.clone();
        tokio::spawn(async move {
            let mut usr1 =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                    .expect("SIGUSR1 handler");
            usr1.recv().await;
            drain.cancel();
        });
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
            signals.cancel();
        });
        tokio::spawn(warm_up_and_watch(hotlines, ready, shutdown.clone()));
        if let Some(dialer) = dialer {
            tokio::spawn(dialer.run());
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        listeners.serve(config, seed, shutdown).await?;
        Ok(())
    })
}

/// Synthesises every hotline's fixed prompts, then reports ready (`voxnav: ready`,
/// `/readyz`): a call answered before would compete with the warm-up for the synthesisers.
/// Then watches the dialplan files, each on its own: a changed file is loaded and checked (a
/// broken one leaves its old version serving), and its new fixed prompts are synthesised.
/// Stops at shutdown.
async fn warm_up_and_watch(
    hotlines: Option<Arc<Hotlines>>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    if let Some(h) = hotlines.clone() {
        let warmed = tokio::task::spawn_blocking(move || {
            for s in h.all() {
                let started = std::time::Instant::now();
                s.prompts.warm(&s.registry, s.tts.as_ref());
                tracing::info!(
                    hotline = %s.registry.current().plan.name,
                    "{} fixed prompts synthesised in {:.1} s",
                    s.prompts.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        });
        tokio::select! {
            _ = warmed => {}
            _ = shutdown.cancelled() => return,
        }
    }
    ready.store(true, Ordering::Release);
    println!("voxnav: ready");
    let Some(h) = hotlines else { return };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_POLL) => {}
            _ = shutdown.cancelled() => return,
        }
        let h = h.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for s in h.all() {
                let path = s.registry.status().file;
                match s.registry.reload_if_changed() {
                    None => {}
                    Some(Ok(v)) => {
                        tracing::info!(
                            dialplan = %path.display(),
                            version = v,
                            "reloaded; calls in progress keep their version"
                        );
                        s.prompts.warm(&s.registry, s.tts.as_ref());
                    }
                    Some(Err(e)) => tracing::error!(
                        dialplan = %path.display(),
                        "refused, still serving the previous version:\n{e}"
                    ),
                }
            }
        })
        .await;
    }
}
