use super::*;

fn hcm() -> TimeZone {
    TimeZone::get("Asia/Ho_Chi_Minh").unwrap()
}

fn local(s: &str) -> DateTime {
    s.parse().unwrap()
}

fn at(tz: &TimeZone, s: &str) -> Timestamp {
    local_instant(tz, local(s)).unwrap()
}

fn schedule(json: &str) -> Schedule {
    parse_schedule(json.as_bytes()).unwrap()
}

fn starts(s: &Schedule, tz: &TimeZone, from: &str, to: &str) -> Vec<String> {
    occurrences(
        &[("site", s)],
        &BTreeSet::new(),
        tz,
        at(tz, from),
        at(tz, to),
    )
    .into_iter()
    .map(|o| o.local_start.strftime("%a %Y-%m-%d %H:%M").to_string())
    .collect()
}

const THURSDAYS: &str = r#"{"revision": 3, "entries": [{
    "id": "thu", "title": "Tiếp công dân định kỳ",
    "start": "2026-12-03T08:00", "end": "2026-12-03T11:00",
    "rrule": "FREQ=WEEKLY;BYDAY=TH", "exdate": ["2026-12-17T08:00"],
    "metadata": {"kind": "dinh-ky"}}]}"#;

#[test]
fn a_weekly_reception_day_with_an_exception_and_a_holiday() {
    let tz = hcm();
    let s = schedule(THURSDAYS);
    assert_eq!(s.revision, 3);
    let holidays = parse_holidays(br#"{"dates": ["2026-12-24", "2027-01-01"]}"#).unwrap();
    let occ = occurrences(
        &[("site", &s)],
        &holidays,
        &tz,
        at(&tz, "2026-12-01T00:00"),
        at(&tz, "2027-01-01T00:00"),
    );
    let keys: Vec<&str> = occ.iter().map(|o| o.key.as_str()).collect();
    // 17 Dec is an exception, 24 Dec a holiday.
    assert_eq!(
        keys,
        [
            "site/thu/2026-12-03T08:00",
            "site/thu/2026-12-10T08:00",
            "site/thu/2026-12-31T08:00"
        ]
    );
    // Asia/Ho_Chi_Minh is UTC+7 all year: 08:00 is 01:00Z, ends 04:00Z.
    assert_eq!(occ[0].start.to_string(), "2026-12-03T01:00:00Z");
    assert_eq!(occ[0].end.unwrap().to_string(), "2026-12-03T04:00:00Z");
    assert_eq!(occ[0].metadata["kind"], "dinh-ky");
    assert_eq!(occ[0].title, "Tiếp công dân định kỳ");
}

#[test]
fn a_zone_with_daylight_saving_keeps_the_local_time() {
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    // Sundays at 08:00 and at 02:30, across the change of 28 March 2027
    // (02:00 becomes 03:00).
    let s = schedule(
        r#"{"entries": [
        {"id": "a", "title": "a", "start": "2027-03-21T08:00", "rrule": "FREQ=WEEKLY;COUNT=2"},
        {"id": "b", "title": "b", "start": "2027-03-21T02:30", "rrule": "FREQ=WEEKLY;COUNT=2"}]}"#,
    );
    let occ = occurrences(
        &[("site", &s)],
        &BTreeSet::new(),
        &tz,
        at(&tz, "2027-03-01T00:00"),
        at(&tz, "2027-04-30T00:00"),
    );
    let got: Vec<(String, String)> = occ
        .iter()
        .map(|o| (o.key.clone(), o.start.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            // UTC+1 before the change.
            (
                "site/b/2027-03-21T02:30".into(),
                "2027-03-21T01:30:00Z".into()
            ),
            (
                "site/a/2027-03-21T08:00".into(),
                "2027-03-21T07:00:00Z".into()
            ),
            // 02:30 does not exist on the 28th: it lands after the gap,
            // 03:30 summer time.
            (
                "site/b/2027-03-28T02:30".into(),
                "2027-03-28T01:30:00Z".into()
            ),
            // 08:00 is still 08:00, now UTC+2.
            (
                "site/a/2027-03-28T08:00".into(),
                "2027-03-28T06:00:00Z".into()
            ),
        ]
    );
}

#[test]
fn daily_monthly_count_and_until() {
    let tz = hcm();
    // Weekdays only, until a date.
    let s = schedule(
        r#"{"entries": [{"id": "d", "title": "d", "start": "2026-12-04T14:00",
        "rrule": "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20261209"}]}"#,
    );
    assert_eq!(
        starts(&s, &tz, "2026-12-01T00:00", "2027-01-01T00:00"),
        [
            "Fri 2026-12-04 14:00",
            "Mon 2026-12-07 14:00",
            "Tue 2026-12-08 14:00",
            "Wed 2026-12-09 14:00"
        ]
    );
    // The second Thursday and the last Friday of each month, three times.
    let s = schedule(
        r#"{"entries": [{"id": "m", "title": "m", "start": "2026-12-01T08:00",
        "rrule": "FREQ=MONTHLY;BYDAY=2TH,-1FR;COUNT=3"}]}"#,
    );
    assert_eq!(
        starts(&s, &tz, "2026-12-01T00:00", "2027-12-01T00:00"),
        [
            "Thu 2026-12-10 08:00",
            "Fri 2026-12-25 08:00",
            "Thu 2027-01-14 08:00"
        ]
    );
    // The 31st of every other month: September and November have none.
    let s = schedule(
        r#"{"entries": [{"id": "e", "title": "e", "start": "2027-01-31T08:00",
        "rrule": "FREQ=MONTHLY;INTERVAL=2;UNTIL=20271231T000000Z"}]}"#,
    );
    assert_eq!(
        starts(&s, &tz, "2027-01-01T00:00", "2028-06-01T00:00"),
        [
            "Sun 2027-01-31 08:00",
            "Wed 2027-03-31 08:00",
            "Mon 2027-05-31 08:00",
            "Sat 2027-07-31 08:00"
        ]
    );
    // Once.
    let s = schedule(r#"{"entries": [{"id": "o", "title": "o", "start": "20270105T090000"}]}"#);
    assert_eq!(
        starts(&s, &tz, "2027-01-01T00:00", "2027-02-01T00:00"),
        ["Tue 2027-01-05 09:00"]
    );
    assert!(starts(&s, &tz, "2027-01-06T00:00", "2027-02-01T00:00").is_empty());
}

#[test]
fn a_bad_schedule_says_which_entry_and_field() {
    let err = |json: &str| parse_schedule(json.as_bytes()).unwrap_err().to_string();
    let e = err(
        r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00", "rrule": "FREQ=YEARLY"}]}"#,
    );
    assert!(
        e.contains("entry 'a', field 'rrule'") && e.contains("YEARLY"),
        "{e}"
    );
    let e = err(
        r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00", "rrule": "FREQ=WEEKLY;BYSETPOS=1"}]}"#,
    );
    assert!(e.contains("BYSETPOS is not taken"), "{e}");
    let e = err(r#"{"entries": [{"id": "a", "title": "t", "start": "3 Dec 08:00"}]}"#);
    assert!(e.contains("field 'start'"), "{e}");
    let e = err(r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00Z"}]}"#);
    assert!(e.contains("field 'start'"), "{e}");
    let e = err(
        r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00", "end": "2026-12-03T07:00"}]}"#,
    );
    assert!(e.contains("field 'end'"), "{e}");
    let e =
        err(r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00", "room": 1}]}"#);
    assert!(e.contains("unknown field `room`"), "{e}");
    let e = err(
        r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00"}, {"id": "a", "title": "t", "start": "2026-12-04T08:00"}]}"#,
    );
    assert!(e.contains("two entries have the id 'a'"), "{e}");
    let e = err(
        r#"{"entries": [{"id": "a", "title": "t", "start": "2026-12-03T08:00", "rrule": "FREQ=WEEKLY;BYDAY=2TH"}]}"#,
    );
    assert!(e.contains("only with FREQ=MONTHLY"), "{e}");
    assert!(parse_holidays(br#"{"dates": ["2027-02-30"]}"#)
        .unwrap_err()
        .to_string()
        .contains("'2027-02-30' is not a date"));
}

#[test]
fn the_site_and_a_group_at_the_same_time_start_one_session() {
    let tz = hcm();
    let site = schedule(THURSDAYS);
    let group = schedule(
        r#"{"entries": [{"id": "tinh", "title": "Tiếp dân trực tuyến toàn tỉnh",
        "start": "2026-12-10T08:00", "end": "2026-12-10T10:00"}]}"#,
    );
    let occ = occurrences(
        &[("site", &site), ("group/toan-tinh", &group)],
        &BTreeSet::new(),
        &tz,
        at(&tz, "2026-12-08T00:00"),
        at(&tz, "2026-12-12T00:00"),
    );
    assert_eq!(occ.len(), 1, "{occ:#?}");
    assert_eq!(occ[0].key, "site/thu/2026-12-10T08:00");
    assert_eq!(occ[0].also, ["group/toan-tinh/tinh/2026-12-10T08:00"]);
}

fn rules() -> Rules {
    Rules {
        warn_before: vec![SignedDuration::from_mins(5), SignedDuration::from_mins(1)],
        extend_by: SignedDuration::from_mins(15),
        late_start: SignedDuration::from_mins(30),
    }
}

/// One Thursday's occurrence, 08:00 to 11:00.
fn thursday() -> (TimeZone, Vec<Occurrence>) {
    let tz = hcm();
    let s = schedule(THURSDAYS);
    let occ = occurrences(
        &[("site", &s)],
        &BTreeSet::new(),
        &tz,
        at(&tz, "2026-12-03T00:00"),
        at(&tz, "2026-12-04T00:00"),
    );
    (tz, occ)
}

#[test]
fn a_session_starts_on_time_is_warned_extended_and_ends_as_planned() {
    let (tz, occ) = thursday();
    let r = rules();
    let mut p = Planner::default();
    assert!(p
        .tick(at(&tz, "2026-12-03T07:59:59"), &occ, None, &r)
        .is_empty());
    assert_eq!(p.next(at(&tz, "2026-12-03T07:59:59"), &occ), Some(&occ[0]));
    let steps = p.tick(at(&tz, "2026-12-03T08:00"), &occ, None, &r);
    assert!(
        matches!(&steps[..], [Step::Start { late, .. }] if late.is_zero()),
        "{steps:?}"
    );
    assert_eq!(p.next(at(&tz, "2026-12-03T08:00"), &occ), None);
    // Starting: nothing more until the actor says it is live.
    assert!(p
        .tick(at(&tz, "2026-12-03T08:00:01"), &occ, None, &r)
        .is_empty());
    p.started(&occ[0].key, "S1");
    let live = Some("S1");
    assert!(p
        .tick(at(&tz, "2026-12-03T10:54:59"), &occ, live, &r)
        .is_empty());
    // 5 minutes before, then 1 minute before.
    let steps = p.tick(at(&tz, "2026-12-03T10:55"), &occ, live, &r);
    assert!(
        matches!(&steps[..], [Step::Warn { left, .. }] if left.as_secs() == 300),
        "{steps:?}"
    );
    assert_eq!(
        p.warning(at(&tz, "2026-12-03T10:56")),
        Some(at(&tz, "2026-12-03T11:00"))
    );
    // A press during the warning: 15 minutes more, the warnings again.
    assert_eq!(
        p.extend(at(&tz, "2026-12-03T10:56"), &r),
        Some(at(&tz, "2026-12-03T11:15"))
    );
    assert_eq!(p.warning(at(&tz, "2026-12-03T10:56")), None);
    assert!(p
        .tick(at(&tz, "2026-12-03T11:00"), &occ, live, &r)
        .is_empty());
    let steps = p.tick(at(&tz, "2026-12-03T11:10"), &occ, live, &r);
    assert!(matches!(&steps[..], [Step::Warn { .. }]), "{steps:?}");
    let steps = p.tick(at(&tz, "2026-12-03T11:14"), &occ, live, &r);
    assert!(
        matches!(&steps[..], [Step::Warn { left, .. }] if left.as_secs() == 60),
        "{steps:?}"
    );
    // No press: it stops at the new end, once.
    let steps = p.tick(at(&tz, "2026-12-03T11:15"), &occ, live, &r);
    assert_eq!(
        steps,
        [Step::Stop {
            key: occ[0].key.clone()
        }]
    );
    assert_eq!(p.extend(at(&tz, "2026-12-03T11:15"), &r), None);
    assert!(p
        .tick(at(&tz, "2026-12-03T11:15:01"), &occ, live, &r)
        .is_empty());
    let steps = p.tick(at(&tz, "2026-12-03T11:15:02"), &occ, None, &r);
    assert!(
        matches!(&steps[..], [Step::Ended { key, session: Some(s), planned: true, .. }] if *key == occ[0].key && s == "S1"),
        "{steps:?}"
    );
    assert!(p.current.is_none());
    // A press without a warning extends nothing.
    assert_eq!(p.extend(at(&tz, "2026-12-03T11:16"), &r), None);
}

#[test]
fn a_session_shorter_than_the_warnings_is_warned_once() {
    let (tz, mut occ) = thursday();
    occ[0].end = Some(at(&tz, "2026-12-03T08:00:50"));
    let r = rules();
    let mut p = Planner::default();
    p.tick(at(&tz, "2026-12-03T08:00"), &occ, None, &r);
    p.started(&occ[0].key, "S1");
    let steps = p.tick(at(&tz, "2026-12-03T08:00:01"), &occ, Some("S1"), &r);
    assert!(matches!(&steps[..], [Step::Warn { .. }]), "{steps:?}");
    assert!(p
        .tick(at(&tz, "2026-12-03T08:00:30"), &occ, Some("S1"), &r)
        .is_empty());
}

#[test]
fn the_button_ends_it_early_restarts_it_and_a_live_room_skips_it() {
    let (tz, occ) = thursday();
    let r = rules();
    let mut p = Planner::default();
    p.tick(at(&tz, "2026-12-03T08:00"), &occ, None, &r);
    p.started(&occ[0].key, "S1");
    let steps = p.tick(at(&tz, "2026-12-03T09:00"), &occ, None, &r);
    assert!(
        matches!(&steps[..], [Step::Ended { planned: false, .. }]),
        "{steps:?}"
    );
    // Its window is still open: a press now restarts the occurrence, with
    // its metadata; the occurrence is not started twice by the schedule.
    let open = p.open(at(&tz, "2026-12-03T09:00:30"), &occ, &r);
    assert_eq!(open, Some(&occ[0]));
    let m = session_metadata(&occ[0]);
    assert_eq!(m["schedule"], occ[0].key);
    assert_eq!(m["kind"], "dinh-ky");
    assert!(p
        .tick(at(&tz, "2026-12-03T09:01"), &occ, Some("S2"), &r)
        .is_empty());
    assert_eq!(
        p.adopt(at(&tz, "2026-12-03T09:01"), &occ[0].key, "S2", &occ, &r),
        Some(occ[0].clone())
    );
    assert_eq!(p.open(at(&tz, "2026-12-03T09:02"), &occ, &r), None);
    // The restarted session keeps the planned end and its warnings.
    let steps = p.tick(at(&tz, "2026-12-03T10:55"), &occ, Some("S2"), &r);
    assert!(matches!(&steps[..], [Step::Warn { .. }]), "{steps:?}");
    let steps = p.tick(at(&tz, "2026-12-03T11:00"), &occ, Some("S2"), &r);
    assert!(matches!(&steps[..], [Step::Stop { .. }]), "{steps:?}");
    let steps = p.tick(at(&tz, "2026-12-03T11:00:02"), &occ, None, &r);
    assert!(
        matches!(&steps[..], [Step::Ended { session: Some(s), planned: true, .. }] if s == "S2"),
        "{steps:?}"
    );
    // Past the window: nothing is open, nothing is adopted.
    assert_eq!(p.open(at(&tz, "2026-12-03T11:00:02"), &occ, &r), None);
    assert_eq!(
        p.adopt(at(&tz, "2026-12-03T11:01"), &occ[0].key, "S3", &occ, &r),
        None
    );

    let mut p = Planner::default();
    let steps = p.tick(at(&tz, "2026-12-03T08:00"), &occ, Some("S0"), &r);
    assert!(
        matches!(
            &steps[..],
            [Step::Skip {
                reason: SkipReason::AlreadyLive,
                ..
            }]
        ),
        "{steps:?}"
    );
    // Once that session is over, the skipped occurrence is open to the
    // button.
    assert_eq!(p.open(at(&tz, "2026-12-03T08:30"), &occ, &r), Some(&occ[0]));
    // A group's occurrence gives its members one group session id.
    let mut g = occ[0].clone();
    g.also = vec!["group/huyen/thu/2026-12-03T08:00".into()];
    assert_eq!(
        session_metadata(&g)[crate::core::session::GROUP_SESSION],
        "group/huyen/thu/2026-12-03T08:00"
    );
    // A failed start leaves the planner free for the next one.
    let mut p = Planner::default();
    p.tick(at(&tz, "2026-12-03T08:00"), &occ, None, &r);
    p.start_failed(&occ[0].key);
    assert!(p.current.is_none());
    assert!(p
        .tick(at(&tz, "2026-12-03T08:00:01"), &occ, None, &r)
        .is_empty());
}

#[test]
fn a_box_that_was_off_reports_what_it_missed_and_starts_late_within_the_window() {
    let (tz, occ) = thursday();
    let r = rules();
    // Off from Wednesday to after 11:00 Thursday: skipped, reported now.
    let mut p = Planner::default();
    let steps = p.tick(at(&tz, "2026-12-03T12:00"), &occ, None, &r);
    assert!(
        matches!(
            &steps[..],
            [Step::Skip {
                reason: SkipReason::BoxWasOff,
                ..
            }]
        ),
        "{steps:?}"
    );
    assert!(p
        .tick(at(&tz, "2026-12-03T12:01"), &occ, None, &r)
        .is_empty());
    // Back at 09:30: it starts, 90 minutes late, and ends as planned.
    let mut p = Planner::default();
    let steps = p.tick(at(&tz, "2026-12-03T09:30"), &occ, None, &r);
    assert!(
        matches!(&steps[..], [Step::Start { late, .. }] if late.as_mins() == 90),
        "{steps:?}"
    );
    // The memory survives a restart as JSON, as the store keeps it.
    let kept: Planner = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(kept, p);
    // A schedule received after an occurrence's end does not report it.
    let mut p = Planner::default();
    p.received(at(&tz, "2026-12-03T12:00"), &occ, &r);
    assert!(p
        .tick(at(&tz, "2026-12-03T12:00"), &occ, None, &r)
        .is_empty());
    // An occurrence without a planned end may start up to 30 minutes late.
    let mut open = occ[0].clone();
    open.end = None;
    let mut p = Planner::default();
    let steps = p.tick(at(&tz, "2026-12-03T08:31"), &[open], None, &r);
    assert!(matches!(&steps[..], [Step::Skip { .. }]), "{steps:?}");
}
