//! `diemcau fleet schedule`: the NOC's side of scheduled sessions. A
//! schedule (or the holiday list) is checked here with the same code the
//! box runs, and published retained only when it passes; `show` reads back
//! what the broker holds and lists the occurrences it makes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::core::schedule;
use crate::mqtt::fleet::{self, Noc};
use crate::mqtt::topics::Topics;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Check a schedule file (JSON) and publish it, retained, for TARGET: a
    /// site id, `group/NAME`, or `holidays` (the province's holiday list).
    /// Nothing is published when the file does not pass.
    Set { target: String, file: PathBuf },
    /// What the broker holds for TARGET, and the occurrences of the next
    /// `--days` in `--time-zone`.
    Show {
        target: String,
        #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
        time_zone: String,
        #[arg(long, default_value_t = 14)]
        days: i64,
    },
    /// Remove TARGET's schedule (an empty retained message).
    Clear { target: String },
}

fn topic(noc: &Noc, target: &str) -> anyhow::Result<String> {
    if target == "holidays" {
        return Ok(Topics::holidays(&noc.prefix));
    }
    if let Some(g) = target.strip_prefix("group/") {
        if g.is_empty() || g.contains(['/', '+', '#']) {
            bail!("'{target}' is not a group: expected group/NAME");
        }
        return Ok(Topics::group_schedule(&noc.prefix, g));
    }
    if target.is_empty() || target.contains(['/', '+', '#']) || target == "all" {
        bail!("'{target}' is not a site id, group/NAME or holidays");
    }
    Ok(Topics::schedule_for(&noc.prefix, target))
}

fn check(target: &str, bytes: &[u8]) -> anyhow::Result<String> {
    if target == "holidays" {
        let dates = schedule::parse_holidays(bytes)?;
        Ok(format!("{} holidays", dates.len()))
    } else {
        let s = schedule::parse_schedule(bytes)?;
        Ok(format!(
            "revision {}, {} entries",
            s.revision,
            s.entries.len()
        ))
    }
}

pub fn run(command: ScheduleCommand, noc: &Noc) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        ScheduleCommand::Set { target, file } => {
            let topic = topic(noc, &target)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let what = check(&target, &bytes)
                .with_context(|| format!("{} is not published", file.display()))?;
            rt.block_on(fleet::publish_retained(noc, &topic, bytes))?;
            println!("published {target}: {what} ({topic})");
            Ok(0)
        }
        ScheduleCommand::Clear { target } => {
            let topic = topic(noc, &target)?;
            rt.block_on(fleet::publish_retained(noc, &topic, Vec::new()))?;
            println!("cleared {target} ({topic})");
            Ok(0)
        }
        ScheduleCommand::Show {
            target,
            time_zone,
            days,
        } => {
            let topic = topic(noc, &target)?;
            let tz = jiff::tz::TimeZone::get(&time_zone)
                .with_context(|| format!("'{time_zone}' is not a time zone"))?;
            let Some(bytes) = rt.block_on(fleet::retained(noc, &topic, Duration::from_secs(2)))?
            else {
                println!("nothing published for {target} ({topic})");
                return Ok(1);
            };
            println!("{}", String::from_utf8_lossy(&bytes));
            println!("{}", check(&target, &bytes)?);
            if target != "holidays" {
                let s = schedule::parse_schedule(&bytes)?;
                let now = jiff::Timestamp::now();
                let to = now + jiff::SignedDuration::from_hours(24 * days.clamp(1, 366));
                let holidays = Default::default();
                for o in schedule::occurrences(&[("site", &s)], &holidays, &tz, now, to) {
                    println!(
                        "{}  {}  {}",
                        o.local_start.strftime("%a %Y-%m-%d %H:%M"),
                        o.key.split('/').nth(1).unwrap_or_default(),
                        o.title
                    );
                }
                println!("(holidays not applied here; the box applies the province's list)");
            }
            Ok(0)
        }
    }
}
