use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;

/// An RFC 3339 timestamp in UTC, as the config's `created` field and the
/// `org.opencontainers.image.created` annotation carry it. Never read from the clock here:
/// the caller decides (`SOURCE_DATE_EPOCH`, or now).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Seconds since the Unix epoch, as in `SOURCE_DATE_EPOCH`.
    pub fn from_unix_seconds(seconds: i64) -> crate::Result<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Timestamp)
            .map_err(|_| Error::Timestamp(seconds))
    }

    /// From a `time` value, converted to UTC.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Timestamp(at.to_offset(time::UtcOffset::UTC))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Parses RFC 3339 text.
    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::from_unix_seconds(0).unwrap();
        assert_eq!(t.to_string(), "1970-01-01T00:00:00Z");
        let t = Timestamp::parse("2015-10-31T22:22:56.015925234Z").unwrap();
        assert_eq!(t.to_string(), "2015-10-31T22:22:56.015925234Z");
        let t = Timestamp::parse("2015-10-31T23:22:56+01:00").unwrap();
        assert_eq!(t.to_string(), "2015-10-31T22:22:56Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
