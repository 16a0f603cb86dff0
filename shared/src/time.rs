//! Local calendar time: the day, ISO week, month and year that contain an
//! instant, in a benefit's time zone.
//!
//! Periods are turned into half-open instant ranges `[start, end)` once per
//! quote, so that checking whether a history entry falls in "this month" is
//! two timestamp comparisons, not a time-zone conversion per entry. Starts
//! are local midnights resolved by jiff's compatible disambiguation, which
//! also handles zones whose DST change happens at midnight.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::model::Period;

/// What "now" is in one time zone: the local date, ISO weekday, and the
/// instant range of each period containing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNow {
    pub date: Date,
    /// ISO weekday: 1 = Monday .. 7 = Sunday.
    pub weekday: u8,
    bounds: [(Timestamp, Timestamp); 4],
}

impl LocalNow {
    pub fn new(now: Timestamp, tz: &TimeZone) -> LocalNow {
        let date = now.to_zoned(tz.clone()).date();
        let weekday = u8::try_from(date.weekday().to_monday_one_offset()).unwrap_or(1);
        let mut bounds = [(Timestamp::MIN, Timestamp::MAX); 4];
        for period in Period::ALL {
            let start = period_start(date, period);
            let end = next_period_start(start, period);
            bounds[period.index()] = (local_midnight(start, tz), local_midnight(end, tz));
        }
        LocalNow {
            date,
            weekday,
            bounds,
        }
    }

    /// The instant range `[start, end)` of `period` around now.
    pub fn bounds(&self, period: Period) -> (Timestamp, Timestamp) {
        self.bounds[period.index()]
    }

    /// `true` when `at` falls in the same `period` as now.
    pub fn same_period(&self, period: Period, at: Timestamp) -> bool {
        let (start, end) = self.bounds(period);
        start <= at && at < end
    }
}

/// The first local date of the period containing `date`.
pub fn period_start(date: Date, period: Period) -> Date {
    match period {
        Period::Day => date,
        Period::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            date.checked_sub(back.days()).unwrap_or(Date::MIN)
        }
        Period::Month => date.first_of_month(),
        Period::Year => date.first_of_year(),
    }
}

fn next_period_start(start: Date, period: Period) -> Date {
    let next = match period {
        Period::Day => start.checked_add(1.day()),
        Period::Week => start.checked_add(7.days()),
        Period::Month => start.checked_add(1.month()),
        Period::Year => start.checked_add(1.year()),
    };
    next.unwrap_or(Date::MAX)
}

fn local_midnight(date: Date, tz: &TimeZone) -> Timestamp {
    match date.to_zoned(tz.clone()) {
        Ok(zoned) => zoned.timestamp(),
        // Only at the ends of the representable range.
        Err(_) if date == Date::MIN => Timestamp::MIN,
        Err(_) => Timestamp::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn riga() -> TimeZone {
        TimeZone::get("Europe/Riga").expect("bundled zone")
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn local_date_is_not_utc_date() {
        // 23:30 UTC on Sunday 1 March is already Monday 2 March in Riga.
        let now = LocalNow::new(ts("2026-03-01T23:30:00Z"), &riga());
        assert_eq!(now.date, date(2026, 3, 2));
        assert_eq!(now.weekday, 1);
        assert!(now.same_period(Period::Day, ts("2026-03-01T22:00:00Z")));
        assert!(!now.same_period(Period::Day, ts("2026-03-01T21:59:59Z")));
    }

    #[test]
    fn iso_week_runs_monday_to_sunday_across_months() {
        let now = LocalNow::new(ts("2026-04-01T10:00:00+03:00"), &riga());
        let (start, end) = now.bounds(Period::Week);
        assert_eq!(start, ts("2026-03-30T00:00:00+03:00"));
        assert_eq!(end, ts("2026-04-06T00:00:00+03:00"));
    }

    #[test]
    fn month_across_dst_change_has_right_bounds() {
        // Riga leaves winter time (+02) on 29 March 2026 at 03:00.
        let now = LocalNow::new(ts("2026-03-29T12:00:00+03:00"), &riga());
        let (start, end) = now.bounds(Period::Month);
        assert_eq!(start, ts("2026-03-01T00:00:00+02:00"));
        assert_eq!(end, ts("2026-04-01T00:00:00+03:00"));
        let (day_start, day_end) = now.bounds(Period::Day);
        assert_eq!(
            day_end.as_second() - day_start.as_second(),
            23 * 3600,
            "a 23-hour day"
        );
    }

    #[test]
    fn year_bounds() {
        let now = LocalNow::new(ts("2026-12-31T23:59:59+02:00"), &riga());
        assert_eq!(now.bounds(Period::Year).1, ts("2027-01-01T00:00:00+02:00"));
        assert_eq!(now.weekday, 4);
    }
}
