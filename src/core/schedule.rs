//! Scheduled sessions: the province's reception days.
//!
//! The NOC publishes schedules (retained, one per site and one per group)
//! and a province-wide holiday list; the box keeps them and starts each
//! occurrence on time by its own clock, with no broker and no network.
//! This module is the pure part: the documents as they come over the wire,
//! their validation (every error names the entry and the field), the
//! recurrence rules (the RFC 5545 RRULE vocabulary a reception calendar
//! needs), and the [`Planner`] that says, at an instant passed in, what the
//! box should do. The actor in `crate::schedule` does the I/O.
//!
//! Local times are civil date-times in the box's configured time zone
//! (Asia/Ho_Chi_Minh by default), as a calendar states them: "every
//! Thursday at 08:00" stays 08:00 across a daylight-saving change in a zone
//! that has one. A local time that a change skips is taken as RFC 5545
//! says (the offset before the gap, so it lands after it); one that occurs
//! twice is the first.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// At most this many entries in one schedule, and occurrences expanded
/// from one rule: a weekly rule over ten years is 520.
pub const MAX_ENTRIES: usize = 500;
const MAX_EXPANSION: usize = 20_000;
/// Case metadata limits, as for a session started by command.
const MAX_METADATA: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("not valid JSON for a schedule: {0}")]
    Json(String),
    #[error("entry '{entry}', field '{field}': {why}")]
    Entry {
        entry: String,
        field: &'static str,
        why: String,
    },
    #[error("two entries have the id '{0}'; each entry needs its own")]
    DuplicateId(String),
    #[error("{0} entries; a schedule holds at most {MAX_ENTRIES}")]
    TooMany(usize),
    #[error("holidays: '{0}' is not a date (YYYY-MM-DD)")]
    Holiday(String),
}

/// A schedule as the NOC publishes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// The NOC's revision of this schedule, echoed in the box's state.
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub entries: Vec<RawEntry>,
}

/// One scheduled session, once or recurring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    /// Stable within the schedule: letters, digits, `-`, `_`, `.`.
    pub id: String,
    pub title: String,
    /// The first start, local time: `2026-12-03T08:00` (or iCalendar's
    /// `20261203T080000`).
    pub start: String,
    /// The planned end of the first occurrence, local time; each
    /// occurrence lasts as long. None: the session runs until someone ends
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// RFC 5545 RRULE value, e.g. `FREQ=WEEKLY;BYDAY=TH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrule: Option<String>,
    /// RFC 5545 EXDATE values: local start times (or dates) left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exdate: Vec<String>,
    /// Case metadata the session carries, as `session.start` takes it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// The province's holidays: dates, not rules (Tết follows the lunar
/// calendar). Every recurring entry skips them; a one-off entry on a
/// holiday was put there on purpose and stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHolidays {
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub dates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Local(DateTime),
    Utc(Timestamp),
}

/// A recurrence rule: the part of RFC 5545 §3.3.10 a reception calendar
/// uses. Anything else is refused by name rather than half-understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub freq: Freq,
    pub interval: i32,
    /// Weekdays, with an ordinal within the month for MONTHLY (`2TH`,
    /// `-1FR`).
    pub by_day: Vec<(Option<i8>, Weekday)>,
    /// Days of the month, negative from its end (MONTHLY and DAILY).
    pub by_month_day: Vec<i8>,
    pub until: Option<Until>,
    pub count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub title: String,
    pub start: DateTime,
    pub duration: Option<SignedDuration>,
    pub rule: Option<Rule>,
    pub exdates: BTreeSet<DateTime>,
    /// Whole days left out (an EXDATE given as a date).
    pub exdays: BTreeSet<Date>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub revision: u64,
    pub entries: Vec<Entry>,
}

/// Parse and check a schedule document.
pub fn parse_schedule(json: &[u8]) -> Result<Schedule, ScheduleError> {
    let raw: RawSchedule =
        serde_json::from_slice(json).map_err(|e| ScheduleError::Json(e.to_string()))?;
    Schedule::from_raw(&raw)
}

/// Parse and check a holiday list.
pub fn parse_holidays(json: &[u8]) -> Result<BTreeSet<Date>, ScheduleError> {
    let raw: RawHolidays =
        serde_json::from_slice(json).map_err(|e| ScheduleError::Json(e.to_string()))?;
    raw.dates
        .iter()
        .map(|d| parse_date(d).ok_or_else(|| ScheduleError::Holiday(d.clone())))
        .collect()
}

impl Schedule {
    pub fn from_raw(raw: &RawSchedule) -> Result<Schedule, ScheduleError> {
        if raw.entries.len() > MAX_ENTRIES {
            return Err(ScheduleError::TooMany(raw.entries.len()));
        }
        let mut ids = BTreeSet::new();
        let mut entries = Vec::with_capacity(raw.entries.len());
        for e in &raw.entries {
            if !ids.insert(e.id.as_str()) {
                return Err(ScheduleError::DuplicateId(e.id.clone()));
            }
            entries.push(Entry::from_raw(e)?);
        }
        Ok(Schedule {
            revision: raw.revision,
            entries,
        })
    }
}

impl Entry {
    fn from_raw(e: &RawEntry) -> Result<Entry, ScheduleError> {
        let bad = |field: &'static str, why: String| ScheduleError::Entry {
            entry: e.id.clone(),
            field,
            why,
        };
        if e.id.is_empty()
            || e.id.len() > 64
            || !e
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad("id", "1 to 64 letters, digits, '-', '_' or '.'".into()));
        }
        if e.title.trim().is_empty() || e.title.len() > 200 {
            return Err(bad("title", "a title of 1 to 200 bytes".into()));
        }
        let start = parse_local(&e.start).ok_or_else(|| {
            bad(
                "start",
                format!(
                    "'{}' is not a local date and time (2026-12-03T08:00)",
                    e.start
                ),
            )
        })?;
        let duration = match &e.end {
            None => None,
            Some(s) => {
                let end = parse_local(s).ok_or_else(|| {
                    bad(
                        "end",
                        format!("'{s}' is not a local date and time (2026-12-03T11:00)"),
                    )
                })?;
                let d = start.duration_until(end);
                if d <= SignedDuration::ZERO || d > SignedDuration::from_hours(24) {
                    return Err(bad(
                        "end",
                        format!("'{s}' must be after the start and within 24 hours of it"),
                    ));
                }
                Some(d)
            }
        };
        let rule = match &e.rrule {
            None => None,
            Some(r) => Some(parse_rrule(r).map_err(|why| bad("rrule", why))?),
        };
        let (mut exdates, mut exdays) = (BTreeSet::new(), BTreeSet::new());
        for x in &e.exdate {
            // One EXDATE property may list several values.
            for v in x.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                if let Some(dt) = parse_local(v) {
                    exdates.insert(dt);
                } else if let Some(d) = parse_date(v) {
                    exdays.insert(d);
                } else {
                    return Err(bad(
                        "exdate",
                        format!("'{v}' is not a local date and time, nor a date"),
                    ));
                }
            }
        }
        if e.metadata.len() > MAX_METADATA
            || e.metadata
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 1024)
        {
            return Err(bad(
                "metadata",
                format!(
                    "at most {MAX_METADATA} entries, keys 1 to 64 bytes, values up to 1024 bytes"
                ),
            ));
        }
        Ok(Entry {
            id: e.id.clone(),
            title: e.title.clone(),
            start,
            duration,
            rule,
            exdates,
            exdays,
            metadata: e.metadata.clone(),
        })
    }

    /// Every start from the first up to `to` (local), in order, with COUNT
    /// and UNTIL applied; exceptions are the caller's.
    fn starts(&self, tz: &TimeZone, to: DateTime) -> Vec<DateTime> {
        let Some(rule) = &self.rule else {
            return if self.start <= to {
                vec![self.start]
            } else {
                vec![]
            };
        };
        let mut out = Vec::new();
        let time = self.start.time();
        let first = self.start.date();
        let within_until = |dt: DateTime| match rule.until {
            None => true,
            Some(Until::Local(u)) => dt <= u,
            Some(Until::Utc(u)) => local_instant(tz, dt).is_some_and(|t| t <= u),
        };
        let mut period = 0i64;
        'periods: loop {
            let (days, period_start) = match rule.freq {
                Freq::Daily => {
                    let Ok(d) = first.checked_add((period * i64::from(rule.interval)).days())
                    else {
                        break;
                    };
                    let keep = (rule.by_day.is_empty()
                        || rule.by_day.iter().any(|(_, w)| *w == d.weekday()))
                        && (rule.by_month_day.is_empty()
                            || rule
                                .by_month_day
                                .iter()
                                .any(|m| month_day(d, *m) == Some(d)));
                    (if keep { vec![d] } else { vec![] }, d)
                }
                Freq::Weekly => {
                    // Weeks begin on Monday (WKST=MO, the only one taken).
                    let monday = first
                        .checked_sub(i64::from(first.weekday().to_monday_zero_offset()).days())
                        .ok();
                    let Some(week) = monday.and_then(|m| {
                        m.checked_add((period * 7 * i64::from(rule.interval)).days())
                            .ok()
                    }) else {
                        break;
                    };
                    let mut wd: Vec<Weekday> = if rule.by_day.is_empty() {
                        vec![first.weekday()]
                    } else {
                        rule.by_day.iter().map(|(_, w)| *w).collect()
                    };
                    wd.sort_by_key(|w| w.to_monday_zero_offset());
                    wd.dedup();
                    let days = wd
                        .iter()
                        .filter_map(|w| {
                            week.checked_add(i64::from(w.to_monday_zero_offset()).days())
                                .ok()
                        })
                        .collect();
                    (days, week)
                }
                Freq::Monthly => {
                    let Ok(month) = first
                        .first_of_month()
                        .checked_add((period * i64::from(rule.interval)).months())
                    else {
                        break;
                    };
                    let mut days: Vec<Date> = Vec::new();
                    for m in &rule.by_month_day {
                        days.extend(month_day(month, *m));
                    }
                    for (nth, w) in &rule.by_day {
                        match nth {
                            Some(n) => days.extend(month.nth_weekday_of_month(*n, *w).ok()),
                            None => days.extend(
                                (1..=5).filter_map(|n| month.nth_weekday_of_month(n, *w).ok()),
                            ),
                        }
                    }
                    if rule.by_month_day.is_empty() && rule.by_day.is_empty() {
                        // The start's day of the month; a month without it
                        // has no occurrence (RFC 5545).
                        days.extend(
                            (first.day() <= month.days_in_month())
                                .then(|| month.with().day(first.day()).build().ok())
                                .flatten(),
                        );
                    }
                    days.sort();
                    days.dedup();
                    (days, month)
                }
            };
            if period_start > to.date() || period as usize > MAX_EXPANSION {
                break;
            }
            for d in days {
                let dt = d.to_datetime(time);
                if dt < self.start {
                    continue;
                }
                if dt > to || !within_until(dt) {
                    break 'periods;
                }
                if rule.count.is_some_and(|c| out.len() >= c as usize) || out.len() >= MAX_EXPANSION
                {
                    break 'periods;
                }
                out.push(dt);
            }
            period += 1;
        }
        out
    }
}

/// Day `m` of `month`'s month, counting back from its end when negative.
fn month_day(month: Date, m: i8) -> Option<Date> {
    let last = month.days_in_month();
    let day = if m > 0 { m } else { last + 1 + m };
    (1..=last)
        .contains(&day)
        .then(|| month.with().day(day).build().ok())
        .flatten()
}

/// The instant of a local time in `tz`: a skipped local time lands after
/// the gap, a repeated one is the first (RFC 5545 §3.3.5).
pub fn local_instant(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

fn parse_local(s: &str) -> Option<DateTime> {
    let s = s.trim();
    if let Some(b) = basic(s) {
        return Some(b);
    }
    // Extended form; a zone or offset is refused: times are the box's.
    if s.ends_with('Z') || s.len() > 19 {
        return None;
    }
    s.parse::<DateTime>().ok().filter(|_| s.contains('T'))
}

/// iCalendar's basic form, `20261203T080000`.
fn basic(s: &str) -> Option<DateTime> {
    let (d, t) = s.split_once('T')?;
    if d.len() != 8 || t.len() != 6 || !(d.chars().chain(t.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>, x: &str| x[r].parse::<i16>().ok();
    DateTime::new(
        n(0..4, d)?,
        n(4..6, d)? as i8,
        n(6..8, d)? as i8,
        n(0..2, t)? as i8,
        n(2..4, t)? as i8,
        n(4..6, t)? as i8,
        0,
    )
    .ok()
}

fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    if s.len() == 8 && s.chars().all(|c| c.is_ascii_digit()) {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().ok();
        return Date::new(n(0..4)?, n(4..6)? as i8, n(6..8)? as i8).ok();
    }
    (s.len() == 10).then(|| s.parse::<Date>().ok()).flatten()
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

/// An RRULE value; the error says which part and what is taken instead.
pub fn parse_rrule(s: &str) -> Result<Rule, String> {
    let mut freq = None;
    let mut rule = Rule {
        freq: Freq::Weekly,
        interval: 1,
        by_day: vec![],
        by_month_day: vec![],
        until: None,
        count: None,
    };
    let s = s.trim().trim_start_matches("RRULE:");
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not NAME=VALUE"))?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match v {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    _ => return Err(format!("FREQ={v} is not taken (DAILY, WEEKLY or MONTHLY)")),
                })
            }
            "INTERVAL" => {
                rule.interval = v
                    .parse()
                    .ok()
                    .filter(|i| (1..=520).contains(i))
                    .ok_or_else(|| format!("INTERVAL={v} must be 1 to 520"))?
            }
            "COUNT" => {
                rule.count = Some(
                    v.parse()
                        .ok()
                        .filter(|c| (1..=MAX_EXPANSION as u32).contains(c))
                        .ok_or_else(|| format!("COUNT={v} must be 1 to {MAX_EXPANSION}"))?,
                )
            }
            "UNTIL" => {
                rule.until = Some(if let Some(utc) = v.strip_suffix('Z') {
                    let dt = basic(utc).ok_or_else(|| format!("UNTIL={v} is not a date-time"))?;
                    Until::Utc(
                        TimeZone::UTC
                            .to_timestamp(dt)
                            .map_err(|e| format!("UNTIL={v}: {e}"))?,
                    )
                } else if let Some(dt) = basic(v) {
                    Until::Local(dt)
                } else if let Some(d) = parse_date(v) {
                    // A date: the whole of that day.
                    Until::Local(d.to_datetime(jiff::civil::Time::MAX))
                } else {
                    return Err(format!("UNTIL={v} is not a date or date-time"));
                })
            }
            "BYDAY" => {
                for d in v.split(',') {
                    let (n, w) = d.split_at(d.len().saturating_sub(2));
                    let w = weekday(w).ok_or_else(|| format!("BYDAY: '{d}' is not a weekday"))?;
                    let n = if n.is_empty() {
                        None
                    } else {
                        Some(
                            n.trim_start_matches('+')
                                .parse::<i8>()
                                .ok()
                                .filter(|n| *n != 0 && (-5..=5).contains(n))
                                .ok_or_else(|| format!("BYDAY: '{d}' has no ordinal -5 to 5"))?,
                        )
                    };
                    rule.by_day.push((n, w));
                }
            }
            "BYMONTHDAY" => {
                for d in v.split(',') {
                    rule.by_month_day.push(
                        d.parse::<i8>()
                            .ok()
                            .filter(|d| *d != 0 && (-31..=31).contains(d))
                            .ok_or_else(|| format!("BYMONTHDAY: '{d}' is not -31 to 31"))?,
                    );
                }
            }
            "WKST" if v == "MO" => {}
            "WKST" => return Err(format!("WKST={v}: weeks begin on Monday (MO) here")),
            other => {
                return Err(format!(
                "{other} is not taken (FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, WKST=MO)"
            ))
            }
        }
    }
    rule.freq = freq.ok_or("FREQ is missing")?;
    if rule.until.is_some() && rule.count.is_some() {
        return Err("UNTIL and COUNT together (RFC 5545 allows one)".into());
    }
    if rule.freq != Freq::Monthly && rule.by_day.iter().any(|(n, _)| n.is_some()) {
        return Err("BYDAY with an ordinal (2TH) only with FREQ=MONTHLY".into());
    }
    if rule.freq == Freq::Weekly && !rule.by_month_day.is_empty() {
        return Err("BYMONTHDAY does not go with FREQ=WEEKLY".into());
    }
    Ok(rule)
}

/// One scheduled session to run, from one or more schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// `SOURCE/ENTRY/LOCAL-START`, e.g. `site/thu-5/2026-12-03T08:00`:
    /// what the box reports each occurrence under.
    pub key: String,
    pub title: String,
    pub start: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// The start as the calendar states it.
    pub local_start: DateTime,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Occurrences of other schedules at the same instant, run as this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// The occurrences of every schedule in `sources` (a name and its
/// schedule: the site's first, then each group's) whose start lies in
/// `[from, to)`, holidays and exceptions applied, in order of start.
/// Occurrences at the same instant start one session: the first source's
/// wins and names the others in `also`.
pub fn occurrences(
    sources: &[(&str, &Schedule)],
    holidays: &BTreeSet<Date>,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Occurrence> {
    // One day past `to` in local terms covers any offset.
    let to_local = tz
        .to_datetime(to)
        .checked_add(1.day())
        .unwrap_or(DateTime::MAX);
    let mut out: Vec<Occurrence> = Vec::new();
    for (source, schedule) in sources {
        for e in &schedule.entries {
            for dt in e.starts(tz, to_local) {
                if e.exdates.contains(&dt)
                    || e.exdays.contains(&dt.date())
                    || (e.rule.is_some() && holidays.contains(&dt.date()))
                {
                    continue;
                }
                let Some(start) = local_instant(tz, dt) else {
                    continue;
                };
                if start < from || start >= to {
                    continue;
                }
                let end = e
                    .duration
                    .and_then(|d| dt.checked_add(d).ok())
                    .and_then(|end| local_instant(tz, end));
                out.push(Occurrence {
                    key: format!("{source}/{}/{}", e.id, dt.strftime("%Y-%m-%dT%H:%M")),
                    title: e.title.clone(),
                    start,
                    end,
                    local_start: dt,
                    metadata: e.metadata.clone(),
                    also: vec![],
                });
            }
        }
    }
    // Stable: among equal starts, the earlier source stays first.
    out.sort_by_key(|o| o.start);
    let mut merged: Vec<Occurrence> = Vec::with_capacity(out.len());
    for o in out {
        match merged.last_mut() {
            Some(last) if last.start == o.start => last.also.push(o.key),
            _ => merged.push(o),
        }
    }
    merged
}

/// How the planner behaves: warnings before a planned end, what a press
/// during one adds, and how late a session without a planned end may
/// still start.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Before the planned end, longest first (5 and 1 minutes).
    pub warn_before: Vec<SignedDuration>,
    pub extend_by: SignedDuration,
    pub late_start: SignedDuration,
}

/// Why an occurrence did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The room was already live with another session.
    AlreadyLive,
    /// Its time passed while the box was off (reported when it is back).
    BoxWasOff,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::AlreadyLive => "already_live",
            SkipReason::BoxWasOff => "box_was_off",
        }
    }
}

/// What the box should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Start the occurrence's session; `late` after its time (a box that
    /// came back within its window).
    Start {
        occurrence: Occurrence,
        late: SignedDuration,
    },
    Skip {
        occurrence: Occurrence,
        reason: SkipReason,
    },
    /// Tell the room the session ends at `end`, `left` from now.
    Warn {
        key: String,
        title: String,
        end: Timestamp,
        left: SignedDuration,
    },
    /// The planned end has come: stop the session.
    Stop { key: String },
    /// The scheduled session is over: at its planned end (`planned`), or
    /// earlier by someone's hand.
    Ended {
        key: String,
        title: String,
        session: Option<String>,
        planned: bool,
    },
}

/// The scheduled session running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    pub key: String,
    pub title: String,
    /// The session's id once it is live.
    pub session: Option<String>,
    /// The planned end, moved by extensions.
    pub end: Option<Timestamp>,
    /// Warnings given for this end (seconds before it).
    pub warned: Vec<i64>,
    pub extensions: u32,
    /// The planner asked for the stop.
    pub stopping: bool,
}

/// The planner's memory, kept in the store across restarts and power cuts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Planner {
    /// Occurrences already started or skipped: key to start (Unix s).
    pub done: BTreeMap<String, i64>,
    pub current: Option<Current>,
}

/// Done occurrences are forgotten this long after their start.
const FORGET_AFTER_S: i64 = 40 * 86_400;

impl Planner {
    /// A schedule has just arrived: occurrences whose time is over are not
    /// the box's to report (it did not know them); those still within
    /// their window will start.
    pub fn received(&mut self, now: Timestamp, occs: &[Occurrence], rules: &Rules) {
        for o in occs {
            if window_end(o, rules) <= now {
                self.done.insert(o.key.clone(), o.start.as_second());
            }
        }
    }

    /// The next occurrence to start, for the standby screen.
    pub fn next<'a>(&self, now: Timestamp, occs: &'a [Occurrence]) -> Option<&'a Occurrence> {
        occs.iter()
            .find(|o| o.start > now && !self.done.contains_key(&o.key))
    }

    /// What to do at `now`, given the occurrences around it and the live
    /// session (`None` when idle or starting).
    pub fn tick(
        &mut self,
        now: Timestamp,
        occs: &[Occurrence],
        live: Option<&str>,
        rules: &Rules,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(c) = &mut self.current {
            match &c.session {
                // Its session is over: by the plan, or by someone's hand.
                Some(s) if live != Some(s.as_str()) => {
                    steps.push(Step::Ended {
                        key: c.key.clone(),
                        title: c.title.clone(),
                        session: c.session.clone(),
                        planned: c.stopping,
                    });
                    self.current = None;
                }
                Some(_) => {
                    if let Some(end) = c.end {
                        // Every threshold passed since the last look: one
                        // warning (a short session passes several at once).
                        let due: Vec<i64> = rules
                            .warn_before
                            .iter()
                            .filter(|w| now >= end - **w && now < end)
                            .map(|w| w.as_secs())
                            .filter(|w| !c.warned.contains(w))
                            .collect();
                        if !due.is_empty() {
                            c.warned.extend(due);
                            steps.push(Step::Warn {
                                key: c.key.clone(),
                                title: c.title.clone(),
                                end,
                                left: now.duration_until(end),
                            });
                        }
                        if now >= end && !c.stopping {
                            c.stopping = true;
                            steps.push(Step::Stop { key: c.key.clone() });
                        }
                    }
                }
                // Still starting: the actor says how that went.
                None => {}
            }
        }
        for o in occs.iter().filter(|o| o.start <= now) {
            if self.done.contains_key(&o.key) {
                continue;
            }
            if window_end(o, rules) <= now {
                self.done.insert(o.key.clone(), o.start.as_second());
                steps.push(Step::Skip {
                    occurrence: o.clone(),
                    reason: SkipReason::BoxWasOff,
                });
                continue;
            }
            match (&self.current, live) {
                // The previous scheduled session is on its way out, or
                // still starting: decide once it is.
                (Some(c), _) if c.stopping || c.session.is_none() => break,
                (_, Some(_)) => {
                    self.done.insert(o.key.clone(), o.start.as_second());
                    steps.push(Step::Skip {
                        occurrence: o.clone(),
                        reason: SkipReason::AlreadyLive,
                    });
                }
                _ => {
                    self.done.insert(o.key.clone(), o.start.as_second());
                    self.current = Some(Current {
                        key: o.key.clone(),
                        title: o.title.clone(),
                        session: None,
                        end: o.end,
                        warned: vec![],
                        extensions: 0,
                        stopping: false,
                    });
                    steps.push(Step::Start {
                        occurrence: o.clone(),
                        late: o.start.duration_until(now),
                    });
                }
            }
        }
        let horizon = now.as_second() - FORGET_AFTER_S;
        self.done.retain(|_, start| *start > horizon);
        steps
    }

    /// The occurrence's session is live.
    pub fn started(&mut self, key: &str, session: &str) {
        if let Some(c) = self.current.as_mut().filter(|c| c.key == key) {
            c.session = Some(session.to_owned());
        }
    }

    /// The occurrence's session could not start.
    pub fn start_failed(&mut self, key: &str) {
        if self.current.as_ref().is_some_and(|c| c.key == key) {
            self.current = None;
        }
    }

    /// A press in the room during a warning: the planned end moves by
    /// `extend_by`. The new end, or `None` when no warning is up.
    pub fn extend(&mut self, now: Timestamp, rules: &Rules) -> Option<Timestamp> {
        let c = self.current.as_mut()?;
        let end = c.end?;
        if c.warned.is_empty() || c.stopping || now >= end {
            return None;
        }
        let new_end = end + rules.extend_by;
        c.end = Some(new_end);
        c.warned.clear();
        c.extensions += 1;
        Some(new_end)
    }

    /// The occurrence a session started by hand now belongs to: one whose
    /// window is open and which the planner has already taken (its session
    /// ended early by someone's hand, or it was skipped), while no
    /// scheduled session runs. The button's start takes its metadata
    /// ([`session_metadata`]), so a restart in the room is a second
    /// recording of the same occurrence and group session, as a start by
    /// the schedule would have been.
    pub fn open<'a>(
        &self,
        now: Timestamp,
        occs: &'a [Occurrence],
        rules: &Rules,
    ) -> Option<&'a Occurrence> {
        if self.current.is_some() {
            return None;
        }
        occs.iter().rev().find(|o| {
            o.start <= now && now < window_end(o, rules) && self.done.contains_key(&o.key)
        })
    }

    /// A session the planner did not start is live and carries `key` (the
    /// button's start in an open occurrence, or a session resumed after a
    /// crash): it is that occurrence's session now, with its planned end
    /// and the warnings before it. The occurrence, or `None` when a
    /// scheduled session runs or `key` is not (or no longer) open.
    pub fn adopt(
        &mut self,
        now: Timestamp,
        key: &str,
        session: &str,
        occs: &[Occurrence],
        rules: &Rules,
    ) -> Option<Occurrence> {
        if self.current.is_some() {
            return None;
        }
        let o = occs
            .iter()
            .find(|o| o.key == key && o.start <= now && now < window_end(o, rules))?;
        // Started by hand before the schedule's own tick saw it: it is
        // the occurrence's start, not a second one.
        self.done.insert(o.key.clone(), o.start.as_second());
        self.current = Some(Current {
            key: o.key.clone(),
            title: o.title.clone(),
            session: Some(session.to_owned()),
            end: o.end,
            warned: vec![],
            extensions: 0,
            stopping: false,
        });
        Some(o.clone())
    }

    /// The warning on screen now, if any: the planned end.
    pub fn warning(&self, now: Timestamp) -> Option<Timestamp> {
        let c = self.current.as_ref()?;
        let end = c.end?;
        (!c.warned.is_empty() && !c.stopping && now < end).then_some(end)
    }
}

/// What a session of `o` carries: its case metadata, the occurrence
/// (`schedule`), its title, and for a group's occurrence (or one a group's
/// shares) the group session id that every member's session carries.
pub fn session_metadata(o: &Occurrence) -> BTreeMap<String, String> {
    let mut m = o.metadata.clone();
    m.insert(SCHEDULE_KEY.into(), o.key.clone());
    m.insert("title".into(), o.title.clone());
    if let Some(g) = std::iter::once(&o.key)
        .chain(&o.also)
        .find(|k| k.starts_with("group/"))
    {
        m.insert(super::session::GROUP_SESSION.into(), g.clone());
    }
    m
}

/// The metadata key naming a session's occurrence.
pub const SCHEDULE_KEY: &str = "schedule";

/// Until when an occurrence may still start: its planned end, or
/// `late_start` after its time when it has none.
fn window_end(o: &Occurrence, rules: &Rules) -> Timestamp {
    o.end.unwrap_or(o.start + rules.late_start)
}

#[cfg(test)]
mod tests;
