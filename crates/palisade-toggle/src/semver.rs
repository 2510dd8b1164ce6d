//! Versions for the `semver` operator, parsed by the `semver` crate (SemVer 2.0) after
//! trimming and dropping a leading `v`/`V` (flagd accepts `v1.0.0`). Build metadata is
//! parsed but ignored in comparisons, as SemVer §10 says (`1.0.0+build` equals `1.0.0`);
//! pre-releases order by §11 (`1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0`).

use std::cmp::Ordering;

/// A parsed version, ordered by SemVer precedence.
#[derive(Debug)]
pub(crate) struct Version(::semver::Version);

pub(crate) fn parse(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    ::semver::Version::parse(s).ok().map(Version)
}

impl Version {
    fn precedence(&self) -> (u64, u64, u64, &::semver::Prerelease) {
        (self.0.major, self.0.minor, self.0.patch, &self.0.pre)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // `semver::Prerelease` orders an empty pre-release after any other (§11.3).
        self.precedence().cmp(&other.precedence())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn precedence() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.2.0",
            "v1.10.0",
            "2.0.0+build.5",
        ];
        for w in order.windows(2) {
            assert!(
                parse(w[0]).unwrap() < parse(w[1]).unwrap(),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(parse("1.2.3+x"), parse("1.2.3"));
        assert_eq!(parse(" V1.2.3 "), parse("1.2.3"));
        for bad in [
            "", "1", "1.2", "1.2.x", "1.2.3.4", "1.2.3-", "a.b.c", "01.2.3",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
