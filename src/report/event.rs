//! A build as the report sees it, and which of `[[notify]]`'s events it is. The build
//! engine fills these in from its own records (the report never reads the state folder),
//! so statuses, messages and the page all say the same thing.

use crate::config::On;
use crate::error::BuildResult;

/// How a build ended (`BuildResult`, as status.json records it), or that it still runs:
/// the page, the statuses and the messages speak of running builds too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Building,
    Succeeded,
    /// Nothing to do: the commit is the live one's, with the same config.
    Unchanged,
    Failed,
    TimedOut,
    /// Its worker died mid-build; recovery recorded it.
    Interrupted,
    /// A newer delivery stopped it.
    Superseded,
    /// A result a newer version wrote: neither a success nor a failure here.
    Unknown,
}

impl From<BuildResult> for Conclusion {
    fn from(r: BuildResult) -> Conclusion {
        match r {
            BuildResult::Succeeded => Conclusion::Succeeded,
            BuildResult::Unchanged => Conclusion::Unchanged,
            BuildResult::Failed => Conclusion::Failed,
            BuildResult::TimedOut => Conclusion::TimedOut,
            BuildResult::Interrupted => Conclusion::Interrupted,
            // A preview's build stopped for production's: like a superseded one, another
            // build comes after it (of the same commit; `Reports` says nothing of it).
            BuildResult::Superseded | BuildResult::Stopped => Conclusion::Superseded,
            BuildResult::Unknown => Conclusion::Unknown,
        }
    }
}

impl Conclusion {
    /// The word status.json and the page's `status.json` use.
    pub fn word(self) -> &'static str {
        match self {
            Conclusion::Building => "building",
            Conclusion::Succeeded => "succeeded",
            Conclusion::Unchanged => "unchanged",
            Conclusion::Failed => "failed",
            Conclusion::TimedOut => "timed_out",
            Conclusion::Interrupted => "interrupted",
            Conclusion::Superseded => "superseded",
            Conclusion::Unknown => "unknown",
        }
    }

    /// For people: `timed out`, not `timed_out`.
    pub fn label(self) -> &'static str {
        match self {
            Conclusion::TimedOut => "timed out",
            other => other.word(),
        }
    }

    pub fn success(self) -> bool {
        matches!(self, Conclusion::Succeeded | Conclusion::Unchanged)
    }

    /// A failure as `failed` (the event) counts it.
    pub fn failure(self) -> bool {
        matches!(
            self,
            Conclusion::Failed | Conclusion::TimedOut | Conclusion::Interrupted
        )
    }
}

/// The commit a build built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commit {
    /// The full id (40 hex digits).
    pub sha: String,
    /// The subject line, as the author wrote it: user text, escaped wherever it is shown.
    pub subject: String,
    pub author: String,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.sha[..self.sha.len().min(7)]
    }
}

/// One build.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub id: String,
    pub conclusion: Conclusion,
    pub commit: Option<Commit>,
    /// RFC 3339.
    pub started: String,
    pub duration_secs: f64,
    /// Where it stopped, by position and program only (`step 2 (pnpm)`, `publish`): never
    /// a step's arguments, which may hold a token.
    pub failed_at: Option<String>,
    /// The release it made, or (unchanged) the one that stays live.
    pub release: Option<String>,
    /// The lines that say what failed (`excerpt::pick`), masked.
    pub lines: Vec<String>,
    /// For a timed-out build: the step timeout, in seconds.
    pub timeout_secs: Option<u64>,
    /// Where its result is seen, when not its entry on the page: a preview's URL.
    pub target_url: Option<String>,
}

/// What a message is about: `[[notify]]`'s `on` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Started,
    Failed,
    Fixed,
    Succeeded,
}

impl Event {
    pub fn word(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Failed => "failed",
            Event::Fixed => "fixed",
            Event::Succeeded => "succeeded",
        }
    }

    /// The event of a finished build, given how the build before it ended (the last one
    /// that was not superseded): `None` for a superseded build, which did not fail.
    pub fn of(conclusion: Conclusion, previous: Option<Conclusion>) -> Option<Event> {
        if conclusion.failure() {
            Some(Event::Failed)
        } else if conclusion.success() && previous.is_some_and(Conclusion::failure) {
            Some(Event::Fixed)
        } else if conclusion.success() {
            Some(Event::Succeeded)
        } else {
            None
        }
    }

    /// Whether a `[[notify]]` with `on` hears of it. A fix is a success too: a robot that
    /// wants every success hears of it once.
    pub fn wanted(self, on: &On) -> bool {
        match self {
            Event::Started => on.started,
            Event::Failed => on.failed,
            Event::Fixed => on.fixed || on.succeeded,
            Event::Succeeded => on.succeeded,
        }
    }
}

/// `38 s`, `4 min 05 s`, `1 h 02 min`: for people.
pub fn duration_words(secs: f64) -> String {
    let s = secs.round() as u64;
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        use Conclusion::*;
        assert_eq!(Event::of(Failed, Some(Succeeded)), Some(Event::Failed));
        assert_eq!(Event::of(Interrupted, None), Some(Event::Failed));
        assert_eq!(Event::of(Succeeded, Some(TimedOut)), Some(Event::Fixed));
        assert_eq!(Event::of(Unchanged, Some(Failed)), Some(Event::Fixed));
        assert_eq!(Event::of(Succeeded, Some(Succeeded)), Some(Event::Succeeded));
        assert_eq!(Event::of(Succeeded, None), Some(Event::Succeeded));
        assert_eq!(Event::of(Superseded, Some(Failed)), None);
        let default = On {
            failed: true,
            fixed: true,
            ..On::default()
        };
        assert!(Event::Fixed.wanted(&default) && !Event::Succeeded.wanted(&default));
        let every = On {
            succeeded: true,
            ..On::default()
        };
        assert!(Event::Fixed.wanted(&every) && !Event::Failed.wanted(&every));
        assert_eq!(Conclusion::from(BuildResult::TimedOut).label(), "timed out");
        assert_eq!(Event::of(Conclusion::from(BuildResult::Unknown), Some(Failed)), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_words(3.25), "3.2 s");
        assert_eq!(duration_words(38.4), "38 s");
        assert_eq!(duration_words(245.0), "4 min 05 s");
        assert_eq!(duration_words(3720.0), "1 h 02 min");
    }
}
