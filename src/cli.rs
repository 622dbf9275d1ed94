//! Command-line interface: argument definitions and dispatch. Each
//! subcommand is a few lines over the library.

mod keys;
mod recordings;
mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::client;
use crate::config::{self, Config, Language};
use crate::core::command::{Command as Request, PresetAction, Reply};
use crate::core::session::SessionRecord;
use crate::core::status::Status;
use crate::core::words;

#[derive(Debug, Parser)]
#[command(
    name = "diemcau",
    version,
    about = "Commune bridge room for online citizen reception"
)]
pub struct Args {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Daemon socket (default: from the configuration file).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Your name, for the audit trail of what you do to recordings and
    /// sessions (or DIEMCAU_OPERATOR; asked for at a terminal otherwise).
    #[arg(long, global = true, value_name = "NAME")]
    pub operator: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (systemd starts this).
    Run,
    /// Show what the box is doing.
    Status {
        /// Machine-readable JSON.
        #[arg(long)]
        json: bool,
        /// Language of the report: vi or en.
        #[arg(long)]
        lang: Option<String>,
    },
    /// Start a session (waits until it is live).
    Start {
        /// Session metadata, e.g. --meta case=HS-2026-001 (repeatable).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
    /// Stop the live session (waits until it is closed).
    Stop,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The recording buffer: list, show, verify, export, delete.
    Recordings {
        #[command(subcommand)]
        command: recordings::RecordingsCommand,
    },
    /// Check every part of the room and every service; PASS/FAIL/SKIP with hints.
    Doctor {
        /// Language: vi (default) or en.
        #[arg(long)]
        lang: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The NOC's view: commands to one box or the whole fleet over MQTT.
    Fleet {
        /// The broker: mqtts://HOST:PORT (or mqtt:// for tests). Needed by
        /// all but `keys enroll` and `keys ls`.
        #[arg(long)]
        broker: Option<String>,
        /// CA certificate (PEM) the broker's certificate chains to.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The NOC's client certificate and key (PEM), for mutual TLS.
        #[arg(long)]
        cert: Option<PathBuf>,
        #[arg(long)]
        key: Option<PathBuf>,
        /// Topic prefix of the fleet.
        #[arg(long, default_value = "diemcau/v1")]
        prefix: String,
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Take in site.toml and certificates from the OS image's setup
    /// partition (run at boot by diemcau-provision.service).
    Provision {
        /// Where the setup partition is mounted.
        #[arg(long, value_name = "DIR")]
        setup: PathBuf,
    },
    /// The audit trail: who did what to the recordings and the box.
    Audit {
        /// Machine-readable JSON.
        #[arg(long)]
        json: bool,
        /// Only the last N records.
        #[arg(long)]
        last: Option<usize>,
    },
    /// Camera PTZ presets: the positions the camera can be sent to by name.
    Camera {
        #[command(subcommand)]
        command: CameraCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every box's retained status (online, offline, lost).
    Ls {
        /// Seconds to collect.
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
    /// Send a command to a site id, to `all`, or to `group/NAME`; prints
    /// each box's replies.
    Cmd {
        target: String,
        /// e.g. session.start, session.stop, diagnostics, camera.preset, rebirth.
        name: String,
        /// The command's args as JSON, e.g. '{"metadata":{"case":"HS-1"}}'.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Seconds to wait for replies.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// The fleet's enrolled device keys, which both recording verifiers
    /// take (`recordings verify --keys`).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// A JPEG still of a box's camera or screen, saved to a file (the
    /// box records who took it in its audit trail).
    Snapshot {
        site: String,
        /// camera (what the encoder gets) or screen (what the room sees).
        #[arg(long, default_value = "camera")]
        source: String,
        /// Pixels wide (64 to 1920; never wider than the source).
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Through the archive's object store rather than in the reply
        /// (a still above 150 KB goes there anyway).
        #[arg(long)]
        archive: bool,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        wait: u64,
    },
    /// A box's journal for a time range (secrets removed), which the box
    /// uploads to the archive; saved here from the link in its reply.
    Logs {
        site: String,
        /// RFC 3339; default an hour before --until.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339; default now.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Scheduled sessions: publish, show or clear a site's, a group's
    /// schedule or the province's holidays (retained).
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CameraCommand {
    /// List the stored presets.
    Presets,
    /// Store the camera's current pan/tilt/zoom under NAME.
    Save { name: String },
    /// Move the camera to the preset NAME.
    Recall { name: String },
    /// Forget the preset NAME.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file; prints each problem with its line.
    Check {
        /// File to check (default: --config or /etc/diemcau/config.toml).
        file: Option<PathBuf>,
    },
}

/// Run the parsed command; the returned value is the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    match args.command {
        Command::Doctor { lang, json } => {
            let lang = match lang {
                Some(l) => Language::parse(&l)
                    .with_context(|| format!("unknown language '{l}'; expected vi or en"))?,
                None => Language::Vi,
            };
            let report = crate::doctor::run(&config_path, lang, !json);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", crate::doctor::render(&report, lang));
            }
            Ok(if report.failed == 0 { 0 } else { 1 })
        }
        Command::Fleet {
            broker,
            ca,
            cert,
            key,
            prefix,
            command,
        } => {
            // The boxes cannot see the NOC's certificate (the broker's ACL
            // decides who may command them); the NOC says who it is.
            let by = args
                .operator
                .clone()
                .or_else(|| std::env::var("DIEMCAU_OPERATOR").ok())
                .or_else(|| std::env::var("USER").ok())
                .and_then(|n| crate::core::audit::clean_name(&n));
            let noc = broker.map(|url| crate::mqtt::fleet::Noc {
                url,
                ca,
                cert,
                key,
                prefix,
                by,
            });
            if let FleetCommand::Keys { command } = command {
                return keys::run(command, noc.as_ref());
            }
            let Some(noc) = noc else {
                bail!("give the broker: diemcau fleet --broker mqtts://HOST:PORT ...");
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            match command {
                FleetCommand::Ls { wait } => {
                    let st = rt.block_on(crate::mqtt::fleet::statuses(
                        &noc,
                        Duration::from_secs(wait),
                    ))?;
                    println!("{} boxes", st.len());
                    for (site, v) in st {
                        println!(
                            "{site:<28} {:<8} {:<10} {}",
                            v["status"].as_str().unwrap_or("?"),
                            v["version"].as_str().unwrap_or(""),
                            v["at"].as_str().unwrap_or("")
                        );
                    }
                    Ok(0)
                }
                FleetCommand::Cmd {
                    target,
                    name,
                    args,
                    wait,
                } => {
                    let args: serde_json::Value = serde_json::from_str(&args)
                        .with_context(|| format!("--args is not JSON: {args}"))?;
                    let replies = rt.block_on(crate::mqtt::fleet::command(
                        &noc,
                        &target,
                        &name,
                        args,
                        Duration::from_secs(wait),
                    ))?;
                    let mut failed = 0;
                    for (site, rs) in &replies {
                        for r in rs {
                            let status = r["status"].as_str().unwrap_or("?");
                            if !matches!(status, "accepted" | "done") {
                                failed += 1;
                            }
                            let extra = r["error"]
                                .as_str()
                                .map(|e| format!(" — {e}"))
                                .unwrap_or_default();
                            println!("{site:<28} {status}{extra}");
                        }
                    }
                    println!("{} boxes answered", replies.len());
                    Ok(if replies.is_empty() || failed > 0 {
                        1
                    } else {
                        0
                    })
                }
                // Returned above, before the broker is required.
                FleetCommand::Keys { .. } => unreachable!("fleet keys is handled first"),
                FleetCommand::Schedule { command } => schedule::run(command, &noc),
                FleetCommand::Logs {
                    site,
                    since,
                    until,
                    out,
                    wait,
                } => {
                    let mut a = serde_json::Map::new();
                    if let Some(t) = since {
                        a.insert("since".into(), t.into());
                    }
                    if let Some(t) = until {
                        a.insert("until".into(), t.into());
                    }
                    let r = done_reply(
                        &rt,
                        &noc,
                        &site,
                        "logs.upload",
                        serde_json::Value::Object(a),
                        wait,
                    )?;
                    let body = fetch(
                        r["result"]["url"].as_str().unwrap_or_default(),
                        r["result"]["key"].as_str().unwrap_or_default(),
                    )?;
                    std::fs::write(&out, &body)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    println!(
                        "{site}: {} lines, {} bytes (gzip), archive key {}, saved to {}",
                        r["result"]["lines"],
                        body.len(),
                        r["result"]["key"].as_str().unwrap_or(""),
                        out.display()
                    );
                    Ok(0)
                }
                FleetCommand::Snapshot {
                    site,
                    source,
                    width,
                    archive,
                    out,
                    wait,
                } => {
                    let r = done_reply(
                        &rt,
                        &noc,
                        &site,
                        "snapshot",
                        serde_json::json!({"source": source, "width": width, "archive": archive}),
                        wait,
                    )?;
                    let (jpeg, from) = match r["result"]["url"].as_str() {
                        Some(url) => {
                            let key = r["result"]["key"].as_str().unwrap_or_default();
                            (fetch(url, key)?, format!(", archive key {key}"))
                        }
                        None => {
                            use base64::Engine;
                            let jpeg = base64::engine::general_purpose::STANDARD
                                .decode(r["result"]["jpeg_base64"].as_str().unwrap_or_default())
                                .context("the still in the reply is not base64")?;
                            (jpeg, String::new())
                        }
                    };
                    std::fs::write(&out, &jpeg)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    println!(
                        "{site}: {source} {}x{}, {} bytes{from}, saved to {}",
                        r["result"]["width"],
                        r["result"]["height"],
                        jpeg.len(),
                        out.display()
                    );
                    Ok(0)
                }
            }
        }
        Command::Camera { command } => {
            let (socket, _) = locate(&args.socket, &config_path);
            let req = match &command {
                CameraCommand::Presets => Request::CameraPresets,
                CameraCommand::Save { name } => Request::CameraPreset {
                    name: name.clone(),
                    action: PresetAction::Save,
                },
                CameraCommand::Recall { name } => Request::CameraPreset {
                    name: name.clone(),
                    action: PresetAction::Recall,
                },
                CameraCommand::Delete { name } => Request::CameraPreset {
                    name: name.clone(),
                    action: PresetAction::Delete,
                },
            };
            let result = call(&socket, &req, Duration::from_secs(10), None)?;
            match command {
                CameraCommand::Presets => {
                    let list: Vec<(String, crate::camera::Ptz)> =
                        serde_json::from_value(result["presets"].clone())?;
                    if list.is_empty() {
                        println!("no presets (save one with: diemcau camera save NAME)");
                    }
                    for (name, p) in list {
                        println!(
                            "{name:<20} pan {:?} tilt {:?} zoom {:?}",
                            p.pan, p.tilt, p.zoom
                        );
                    }
                }
                _ => println!("{result}"),
            }
            Ok(0)
        }
        Command::Recordings { command } => {
            let cfg = config::load(&config_path).ok();
            let (socket, _) = locate(&args.socket, &config_path);
            let who = recordings::audited(&command).then(|| operator(args.operator.as_deref()));
            recordings::run(command, &socket, cfg.as_ref(), who.flatten())
        }
        Command::Audit { json, last } => {
            let config = config::load(&config_path)?;
            let log = crate::audit::AuditLog::new(&config.daemon.state_dir);
            let records = log.read_all()?;
            let verdict = crate::core::audit::verify(&records);
            let shown = &records[records.len().saturating_sub(last.unwrap_or(usize::MAX))..];
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "records": shown,
                        "intact": verdict.is_ok(),
                        "problem": verdict.as_ref().err().map(|e| e.to_string()),
                    }))?
                );
            } else {
                for r in shown {
                    println!(
                        "{:>5}  {}  {:<20} {:<24} {}  {}",
                        r.seq,
                        r.at.format("%Y-%m-%d %H:%M:%S"),
                        r.action,
                        r.target.as_deref().unwrap_or("-"),
                        r.who.describe(),
                        r.outcome
                    );
                }
                match &verdict {
                    Ok(()) => println!(
                        "{} records; the chain holds ({})",
                        records.len(),
                        log.path().display()
                    ),
                    Err(e) => println!("CHAIN BROKEN: {e}"),
                }
            }
            // 3 as for a tampered recording.
            Ok(if verdict.is_ok() { 0 } else { 3 })
        }
        Command::Run => {
            use crate::config::apply;
            let config = match config::load(&config_path) {
                Ok(c) => c,
                // A remote change that does not even load: back to the last
                // known good file.
                Err(e) if apply::rollback(&config_path, &e.to_string())? => {
                    config::load(&config_path)?
                }
                Err(e) => return Err(e.into()),
            };
            let exit = match crate::daemon::run(config) {
                Ok(exit) => exit,
                Err(e) if apply::rollback(&config_path, &format!("{e:#}"))? => {
                    crate::daemon::Exit::Restart
                }
                Err(e) => return Err(e),
            };
            if exit == crate::daemon::Exit::Restart {
                // Start again in place (same PID, so systemd keeps tracking it).
                use std::os::unix::process::CommandExt;
                let exe =
                    std::env::current_exe().context("cannot find the daemon's own executable")?;
                let err = std::process::Command::new(exe)
                    .args(std::env::args_os().skip(1))
                    .exec();
                return Err(anyhow::anyhow!("cannot restart: {err}"));
            }
            Ok(0)
        }
        Command::Provision { setup } => {
            let now = chrono::Utc::now().timestamp();
            match crate::provision::run(&setup, &config_path, now)? {
                crate::provision::Outcome::Unchanged => {
                    println!("site.toml: unchanged since the last boot");
                    Ok(0)
                }
                crate::provision::Outcome::Applied => {
                    let s = crate::provision::read_status(&config_path);
                    println!("{}", s.map(|s| s.message(Language::En)).unwrap_or_default());
                    Ok(0)
                }
                crate::provision::Outcome::Rejected(s) => {
                    println!("{}\n{}", s.message(Language::Vi), s.message(Language::En));
                    Ok(1)
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let path = file.unwrap_or(config_path);
            match config::load(&path) {
                Ok(c) => {
                    println!("{}: OK (site {})", path.display(), c.site.id);
                    Ok(0)
                }
                Err(e) => {
                    println!("{e}");
                    Ok(2)
                }
            }
        }
        Command::Status { json, lang } => {
            let (socket, cfg_lang) = locate(&args.socket, &config_path);
            let lang = match lang {
                Some(l) => Language::parse(&l)
                    .with_context(|| format!("unknown language '{l}'; expected vi or en"))?,
                None => cfg_lang,
            };
            let result = call(&socket, &Request::Status, Duration::from_secs(5), None)?;
            let status: Status = serde_json::from_value(result).context("status reply")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render_status(&status, lang));
            }
            Ok(0)
        }
        Command::Start { meta } => {
            let (socket, lang) = locate(&args.socket, &config_path);
            let metadata = parse_meta(&meta)?;
            let by = operator(args.operator.as_deref());
            let result = call(
                &socket,
                &Request::SessionStart { metadata },
                Duration::from_secs(30),
                by.as_deref(),
            )?;
            let rec: SessionRecord =
                serde_json::from_value(result["session"].clone()).context("start reply")?;
            println!("{}: {}", words::cli::labels(lang).session, rec.id);
            println!("{}", words::phase(lang, crate::core::session::Phase::Live));
            Ok(0)
        }
        Command::Stop => {
            let (socket, lang) = locate(&args.socket, &config_path);
            let by = operator(args.operator.as_deref());
            let result = call(
                &socket,
                &Request::SessionStop,
                Duration::from_secs(30),
                by.as_deref(),
            )?;
            let rec: SessionRecord =
                serde_json::from_value(result["session"].clone()).context("stop reply")?;
            println!(
                "{}: {} — {}",
                words::cli::labels(lang).session,
                rec.id,
                words::outcome(lang, rec.outcome.as_ref())
            );
            Ok(0)
        }
    }
}

/// The socket and language to use: flags first, then the config file if it
/// can be read, then the defaults.
fn locate(socket: &Option<PathBuf>, config_path: &Path) -> (PathBuf, Language) {
    let cfg: Option<Config> = config::load(config_path).ok();
    let lang = cfg.as_ref().map_or(Language::Vi, |c| c.daemon.language);
    let socket = socket
        .clone()
        .or_else(|| cfg.map(|c| c.daemon.socket))
        .unwrap_or_else(|| PathBuf::from("/run/diemcau/api.sock"));
    (socket, lang)
}

/// The name of the person at the box, for the audit trail: `--operator`,
/// else `DIEMCAU_OPERATOR`, else asked for when a person is at a terminal
/// (technicians may share one login; the Unix account is recorded anyway).
fn operator(given: Option<&str>) -> Option<String> {
    use std::io::IsTerminal;
    if let Some(n) = given
        .map(str::to_owned)
        .or_else(|| std::env::var("DIEMCAU_OPERATOR").ok())
    {
        return crate::core::audit::clean_name(&n);
    }
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{}", words::cli::ASK_OPERATOR);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    crate::core::audit::clean_name(&line)
}

fn call(
    socket: &Path,
    req: &Request,
    timeout: Duration,
    by: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let reply: Reply = client::request_as(socket, req, timeout, by)?;
    match (reply.ok, reply.result, reply.error) {
        (true, Some(r), _) => Ok(r),
        (_, _, Some(e)) => bail!("{}", e.message),
        _ => bail!("the daemon sent an empty reply"),
    }
}

fn parse_meta(meta: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    meta.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("'{kv}' is not KEY=VALUE"))?;
            if k.is_empty() {
                bail!("'{kv}' has an empty key");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn local_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%H:%M:%S %d/%m/%Y")
        .to_string()
}

/// The human-readable status report.
pub fn render_status(s: &Status, lang: Language) -> String {
    use std::fmt::Write;
    let l = words::cli::labels(lang);
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} ({})", l.site, s.site_name, s.site_id);
    let _ = writeln!(out, "{}: {}", l.state, words::phase(lang, s.phase));
    if let Some(f) = &s.fault {
        let _ = writeln!(out, "  {f}");
    }
    if let Some(sess) = &s.session {
        let _ = writeln!(
            out,
            "{}: {} ({} {})",
            l.session,
            sess.id,
            l.since,
            local_time(&sess.requested_at)
        );
    }
    if !s.degraded.is_empty() {
        let list: Vec<_> = s
            .degraded
            .iter()
            .map(|d| words::degradation(lang, *d))
            .collect();
        let _ = writeln!(out, "{}: {}", l.problems, list.join("; "));
    }
    let up = &s.media.uplink;
    if s.media.running {
        let state = if !up.configured {
            l.not_configured.to_owned()
        } else if up.connected {
            format!(
                "{} (RTT {:.0} ms, {} kbit/s, {})",
                l.connected,
                up.rtt_ms,
                up.bitrate_kbps,
                words::cli::latency(lang, up.latency_ms, up.latency_why)
            )
        } else {
            l.disconnected.to_owned()
        };
        let _ = writeln!(out, "{}: {state}", l.uplink);
    }
    if let Some(last) = &s.last_session {
        let _ = writeln!(
            out,
            "{}: {} — {}",
            l.last,
            last.id,
            words::outcome(lang, last.outcome.as_ref())
        );
    }
    out
}

/// An object a box put in the archive (logs, a still), through the link in
/// its reply: the NOC needs no archive credentials of its own.
fn fetch(url: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    ureq::get(url)
        .call()
        .with_context(|| format!("cannot fetch {key} from the archive"))?
        .into_reader()
        .read_to_end(&mut body)
        .with_context(|| format!("{key} did not arrive whole"))?;
    Ok(body)
}

/// One box's final reply to `name`, which must be `done`: its result and
/// the rest of the reply. Anything else is the error, with the box's words.
fn done_reply(
    rt: &tokio::runtime::Runtime,
    noc: &crate::mqtt::fleet::Noc,
    site: &str,
    name: &str,
    args: serde_json::Value,
    wait: u64,
) -> anyhow::Result<serde_json::Value> {
    let replies = rt.block_on(crate::mqtt::fleet::command(
        noc,
        site,
        name,
        args,
        Duration::from_secs(wait),
    ))?;
    let Some(r) = replies.get(site).and_then(|rs| rs.last()) else {
        bail!("{site} did not answer in {wait} s");
    };
    if r["status"] != "done" {
        bail!(
            "{site}: {} — {}",
            r["status"].as_str().unwrap_or("?"),
            r["error"].as_str().unwrap_or("")
        );
    }
    Ok(r.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_pairs() {
        let m = parse_meta(&["case=HS-1".into(), "note=a=b".into()]).unwrap();
        assert_eq!(m["case"], "HS-1");
        assert_eq!(m["note"], "a=b");
        assert!(parse_meta(&["nokey".into()]).is_err());
        assert!(parse_meta(&["=v".into()]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn status_in_vietnamese_by_default_words() {
        let s = Status {
            version: "0".into(),
            site_id: "xa".into(),
            site_name: "Xã Một".into(),
            phase: crate::core::session::Phase::Idle,
            fault: None,
            session: None,
            degraded: vec![],
            last_session: None,
            uptime_s: 1,
            schedule: Default::default(),
            media: Default::default(),
            upload: Default::default(),
            call: Default::default(),
        };
        let v = render_status(&s, Language::Vi);
        assert!(v.contains("Trạng thái: Sẵn sàng"), "{v}");
        let e = render_status(&s, Language::En);
        assert!(e.contains("State: Ready"), "{e}");
    }
}
