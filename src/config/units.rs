//! Durations (`250ms`, `30s`, `15m`, `12h`, `7d`) and sizes (`1048576`,
//! `512B`, `64KiB`, `10MiB`, `1GiB`) as gateway.yaml writes them.

use std::time::Duration;

pub fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (write e.g. 250ms, 30s, 15m, 12h, 7d)"))?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} has no valid unit (write e.g. 250ms, 30s, 15m, 12h, 7d)"
            ))
        }
    };
    n.checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

pub fn size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?} is not a size (write bytes, or e.g. 512B, 64KiB, 10MiB, 1GiB)")
    })?;
    let mult: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{text:?} has no valid unit (B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "5y",
            "99999999999999999999d",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(size("1048576"), Ok(1_048_576));
        assert_eq!(size("512B"), Ok(512));
        assert_eq!(size("64KiB"), Ok(65_536));
        assert_eq!(size("10MiB"), Ok(10_485_760));
        assert_eq!(size("1GiB"), Ok(1_073_741_824));
        for bad in ["", "MiB", "10MB", "1.5MiB", "10kib"] {
            assert!(size(bad).is_err(), "{bad:?} should fail");
        }
    }
}
