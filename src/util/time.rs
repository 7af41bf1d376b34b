//! UTC time as text: the ISO 8601 spellings that captures, HAR, dumps and the filter use, HTTP dates, and the
//! calendar conversions behind LLSD dates, all on the `time` crate (no calendar arithmetic of our
//! own). Owns only conversions; knows no file format.

use time::{Date, Month, OffsetDateTime, Time};

/// A whole second in UTC, broken into calendar fields (proleptic Gregorian calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The calendar fields of `unix_secs` (seconds since 1970-01-01T00:00:00Z); `None` outside the
/// years -9999..=9999.
pub fn civil(unix_secs: i64) -> Option<Civil> {
    let t = OffsetDateTime::from_unix_timestamp(unix_secs).ok()?;
    Some(Civil {
        year: t.year(),
        month: u8::from(t.month()),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
    })
}

/// The seconds since the epoch of calendar fields; `None` when they name no real instant (month
/// 13, February 30, hour 24, second 60, ...).
pub fn unix_secs(c: Civil) -> Option<i64> {
    let month = Month::try_from(c.month).ok()?;
    let date = Date::from_calendar_date(c.year, month, c.day).ok()?;
    let time = Time::from_hms(c.hour, c.minute, c.second).ok()?;
    Some(date.with_time(time).assume_utc().unix_timestamp())
}

/// ISO 8601 UTC with milliseconds, `2026-11-25T14:02:03.123Z` (captures, HAR, dumps). An instant
/// outside the years -9999..=9999 (only a damaged file has one) is written as its number of
/// microseconds, `@<us>us`, so it is still visible and never mistaken for a date.
pub fn iso8601_millis(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let millis = us.rem_euclid(1_000_000) / 1000;
    match civil(secs) {
        Some(c) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        ),
        None => format!("@{us}us"),
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, for file names; `None` outside the years 0..=9999.
pub fn compact(us: i64) -> Option<String> {
    let c = civil(us.div_euclid(1_000_000)).filter(|c| c.year >= 0)?;
    Some(format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    ))
}

/// An HTTP date (RFC 9110's IMF-fixdate, `Tue, 01 Dec 2026 02:09:00 GMT`), as hyper writes `date`;
/// `None` outside the years -9999..=9999.
pub fn http_date(unix_secs: i64) -> Option<String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = OffsetDateTime::from_unix_timestamp(unix_secs).ok()?;
    let weekday = DAYS[usize::from(t.weekday().number_days_from_monday())];
    let month = MONTHS[usize::from(u8::from(t.month()) - 1)];
    Some(format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_written_as_hyper_writes_them() {
        assert_eq!(http_date(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        // 2026-12-01T02:09:00Z, a Tuesday.
        assert_eq!(
            http_date(1_796_090_940).unwrap(),
            "Tue, 01 Dec 2026 02:09:00 GMT"
        );
        assert_eq!(
            http_date(951_782_400).unwrap(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(http_date(i64::MAX), None);
    }

    #[test]
    fn known_instants() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z (a leap day) = 951827696 s.
        assert_eq!(
            iso8601_millis(951_827_696_789_000),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            iso8601_millis(1_795_615_323_000_000),
            "2026-11-25T14:02:03.000Z"
        );
        // Before the epoch the milliseconds still count forward from the whole second.
        assert_eq!(iso8601_millis(-500_000), "1969-12-31T23:59:59.500Z");
        assert_eq!(iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
        // Year 1 and year 9999 are in range; a damaged timestamp is not, and does not panic.
        assert_eq!(
            iso8601_millis(-62_135_596_800_000_000),
            "0001-01-01T00:00:00.000Z"
        );
        assert_eq!(
            iso8601_millis(253_402_300_799_999_000),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(iso8601_millis(i64::MAX), format!("@{}us", i64::MAX));
        assert_eq!(iso8601_millis(i64::MIN), format!("@{}us", i64::MIN));
        assert_eq!(
            compact(1_795_615_323_000_000).as_deref(),
            Some("20261125-140203")
        );
        assert_eq!(compact(i64::MAX), None);
    }

    #[test]
    fn calendar_fields_round_trip_and_impossible_dates_are_refused() {
        for secs in [
            0,
            -1,
            951_782_400,
            1_138_804_193,
            -62_135_596_800,
            253_402_300_799,
        ] {
            let c = civil(secs).unwrap();
            assert_eq!(unix_secs(c), Some(secs), "{c:?}");
        }
        let ok = Civil {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 59,
        };
        assert!(unix_secs(ok).is_some());
        for bad in [
            Civil { year: 2023, ..ok },
            Civil { month: 13, ..ok },
            Civil { month: 0, ..ok },
            Civil { day: 0, ..ok },
            Civil { hour: 24, ..ok },
            Civil { minute: 60, ..ok },
            Civil { second: 60, ..ok },
            Civil { year: 1900, ..ok },
        ] {
            assert_eq!(unix_secs(bad), None, "{bad:?}");
        }
        assert_eq!(civil(i64::MAX), None);
    }
}
