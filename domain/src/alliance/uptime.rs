//! A node's measured uptime over a period, from its uptime reports, by the
//! grid's 80-minute rule.
//!
//! - A node is **up** between two consecutive reports no more than
//!   [`MAX_REPORT_GAP`] (80 minutes) apart, and down across a longer gap,
//!   all of it. Time after the last report (or before the first) is down:
//!   the caller passes the reports from 80 minutes before the period to 80
//!   minutes after it, so that a report before the start and one after it
//!   cover the start, and likewise the end.
//! - A maintenance window announced at least [`MIN_NOTICE`] (24 h) before it
//!   starts is **excused**: its time is left out of the measure, up or
//!   down. A window announced later counts like any other time. Windows
//!   may overlap; they are clamped to the period.
//! - Uptime = up time outside excused windows / period time outside
//!   excused windows, in basis points, rounded down. A period wholly
//!   excused measures 10,000 (nothing counted against the node); no
//!   reports otherwise measure 0.

use super::values::{MaintenanceWindow, BPS_WHOLE};

/// The longest gap between two reports over which a node counts as up.
pub const MAX_REPORT_GAP: i64 = 80 * 60;
/// How long before its start a window must be announced to be excused.
pub const MIN_NOTICE: i64 = 24 * 3_600;

/// The node's uptime in `[start, end)`, in basis points (0 to 10,000).
/// `reports` are the unix-second timestamps of its `NodeUptimeReported`
/// events, in any order, duplicates allowed. An empty or reversed period
/// measures 10,000 (there is no time to count against the node).
pub fn measure_uptime_bps(
    reports: &[i64],
    start: i64,
    end: i64,
    windows: &[MaintenanceWindow],
) -> u16 {
    if end <= start {
        return BPS_WHOLE;
    }
    let mut times = reports.to_vec();
    times.sort_unstable();
    times.dedup();
    let up: Vec<(i64, i64)> = times
        .windows(2)
        .filter(|w| w[1] - w[0] <= MAX_REPORT_GAP)
        .filter_map(|w| clamp((w[0], w[1]), start, end))
        .collect();
    let up = merge(up);
    let excused = merge(
        windows
            .iter()
            .filter(|w| w.start.saturating_sub(w.announced_at) >= MIN_NOTICE)
            .filter_map(|w| clamp((w.start, w.end), start, end))
            .collect(),
    );

    let counted = (end - start) - length(&excused);
    if counted <= 0 {
        return BPS_WHOLE;
    }
    let up_counted = length(&up) - overlap(&up, &excused);
    let bps = i128::from(up_counted) * i128::from(BPS_WHOLE) / i128::from(counted);
    // 0 <= up_counted <= counted, so the quotient is within 0..=10,000.
    bps.clamp(0, i128::from(BPS_WHOLE)) as u16
}

/// The part of `[a, b)` inside `[start, end)`, if any.
fn clamp((a, b): (i64, i64), start: i64, end: i64) -> Option<(i64, i64)> {
    let (a, b) = (a.max(start), b.min(end));
    (a < b).then_some((a, b))
}

/// Sorted, disjoint intervals covering the same time.
fn merge(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    intervals.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
    for (a, b) in intervals {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn length(intervals: &[(i64, i64)]) -> i64 {
    intervals.iter().map(|(a, b)| b - a).sum()
}

/// The time two sorted, disjoint interval lists share.
fn overlap(x: &[(i64, i64)], y: &[(i64, i64)]) -> i64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < x.len() && j < y.len() {
        let (a, b) = (x[i].0.max(y[j].0), x[i].1.min(y[j].1));
        if a < b {
            total += b - a;
        }
        if x[i].1 < y[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const H: i64 = 3_600;
    /// A 30-day period starting at a round timestamp.
    const START: i64 = 1_796_083_200;
    const END: i64 = START + 30 * 24 * H;

    fn every(step: i64, from: i64, to: i64) -> Vec<i64> {
        (0..)
            .map(|i| from + i * step)
            .take_while(|&t| t <= to)
            .collect()
    }

    fn window(start: i64, end: i64, notice: i64) -> MaintenanceWindow {
        MaintenanceWindow {
            start,
            end,
            announced_at: start - notice,
        }
    }

    #[test]
    fn reports_every_40_minutes_around_the_period_are_full_uptime() {
        let reports = every(40 * 60, START - 30 * 60, END + 40 * 60);
        assert_eq!(measure_uptime_bps(&reports, START, END, &[]), 10_000);
    }

    #[test]
    fn a_report_before_the_start_covers_the_start() {
        // 10:00 before the start, then every 40 minutes: covered from START.
        let mut reports = vec![START - 10 * 60];
        reports.extend(every(40 * 60, START + 30 * 60, END + 30 * 60));
        assert_eq!(measure_uptime_bps(&reports, START, END, &[]), 10_000);
        // Without it the first 30 minutes are down.
        let later = every(40 * 60, START + 30 * 60, END + 30 * 60);
        let expected = ((END - START - 30 * 60) * 10_000 / (END - START)) as u16;
        assert_eq!(measure_uptime_bps(&later, START, END, &[]), expected);
    }

    #[test]
    fn a_gap_longer_than_80_minutes_is_down_all_of_it() {
        let mut reports = every(40 * 60, START - 60, START + 10 * H);
        let last_before = *reports.last().expect("some");
        let first_after = START + 12 * H;
        reports.extend(every(40 * 60, first_after, END + 60));
        let down = first_after - last_before;
        assert!(down > MAX_REPORT_GAP);
        let expected = ((END - START - down) * 10_000 / (END - START)) as u16;
        assert_eq!(measure_uptime_bps(&reports, START, END, &[]), expected);
        // Exactly 80 minutes apart is still up.
        assert_eq!(
            measure_uptime_bps(&every(80 * 60, START - 60, END + 80 * 60), START, END, &[]),
            10_000
        );
        assert!(
            measure_uptime_bps(
                &every(80 * 60 + 1, START - 60, END + 81 * 60),
                START,
                END,
                &[]
            ) == 0
        );
    }

    #[test]
    fn no_reports_is_zero_unless_the_whole_period_is_excused() {
        assert_eq!(measure_uptime_bps(&[], START, END, &[]), 0);
        assert_eq!(measure_uptime_bps(&[START + H], START, END, &[]), 0);
        let whole = window(START - H, END + H, 2 * MIN_NOTICE);
        assert_eq!(measure_uptime_bps(&[], START, END, &[whole]), 10_000);
        let late = window(START - H, END + H, MIN_NOTICE - 1);
        assert_eq!(measure_uptime_bps(&[], START, END, &[late]), 0);
    }

    #[test]
    fn announced_windows_are_left_out_and_late_ones_count() {
        // Up for the first half only; the second half in maintenance.
        let reports = every(40 * 60, START - 40 * 60, START + 15 * 24 * H);
        let half = (START + 15 * 24 * H, END);
        let announced = window(half.0, half.1, MIN_NOTICE);
        let late = window(half.0, half.1, MIN_NOTICE - 1);
        assert_eq!(
            measure_uptime_bps(&reports, START, END, &[announced]),
            10_000
        );
        assert_eq!(measure_uptime_bps(&reports, START, END, &[late]), 5_000);
        // Overlapping windows count once.
        let a = window(half.0, half.0 + 10 * 24 * H, MIN_NOTICE);
        let b = window(half.0 + 5 * 24 * H, half.1 + 24 * H, MIN_NOTICE);
        assert_eq!(measure_uptime_bps(&reports, START, END, &[a, b]), 10_000);
    }

    #[test]
    fn up_time_inside_an_excused_window_is_not_counted_either() {
        // Up all period; a day of announced maintenance changes nothing.
        let reports = every(40 * 60, START - 40 * 60, END + 40 * 60);
        let w = window(START + 24 * H, START + 48 * H, MIN_NOTICE);
        assert_eq!(measure_uptime_bps(&reports, START, END, &[w]), 10_000);
        // Up only in that window: nothing counted as up.
        let inside = every(40 * 60, START + 24 * H, START + 48 * H);
        assert_eq!(measure_uptime_bps(&inside, START, END, &[w]), 0);
    }

    fn arb_windows() -> impl Strategy<Value = Vec<MaintenanceWindow>> {
        prop::collection::vec(
            (
                START - 5 * 24 * H..END + 5 * 24 * H,
                0..10 * 24 * H,
                0..3 * MIN_NOTICE,
            )
                .prop_map(|(s, len, notice)| window(s, s + len, notice)),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn uptime_is_within_basis_points(
            reports in prop::collection::vec(START - 2 * H..END + 2 * H, 0..200),
            windows in arb_windows(),
        ) {
            let bps = measure_uptime_bps(&reports, START, END, &windows);
            prop_assert!(bps <= 10_000);
        }

        #[test]
        fn regular_reports_over_the_period_are_full_uptime(
            step in 60i64..=80 * 60,
            lead in 0i64..80 * 60,
            windows in arb_windows(),
        ) {
            let reports = every(step, START - lead, END + step);
            prop_assert_eq!(measure_uptime_bps(&reports, START, END, &windows), 10_000);
        }

        #[test]
        fn more_reports_never_lower_uptime(
            reports in prop::collection::vec(START - 2 * H..END + 2 * H, 0..100),
            extra in START - 2 * H..END + 2 * H,
            windows in arb_windows(),
        ) {
            let before = measure_uptime_bps(&reports, START, END, &windows);
            let mut more = reports.clone();
            more.push(extra);
            prop_assert!(measure_uptime_bps(&more, START, END, &windows) >= before);
        }
    }
}
