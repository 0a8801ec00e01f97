//! The replay check of Gitee's signing mode: `seen-tokens` in the hook's state folder,
//! and the tokens the waiting marker holds. Why a reservation need not wait for the disk
//! while the marker does: state.rs, "What waits for the disk".

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::build::state::{write_replacing, HookState, Pending, Wait};
use crate::error::{Error, Result};

/// The oldest receipt time (ms) of a token still kept at `now_ms`: tokens are kept
/// (hashed) for twice the allowed clock skew, the longest a replayed token could still
/// pass the timestamp check.
pub fn horizon(now_ms: u128, max_age_secs: u64) -> u128 {
    now_ms.saturating_sub(u128::from(max_age_secs) * 2000)
}

impl HookState {
    /// The replay check of Gitee's signing mode: reserves `token` for the delivery being
    /// answered, or says it is taken (`None`): accepted before (settled in `seen-tokens`,
    /// or held by the waiting marker), or reserved right now by another live delivery.
    /// Check-and-reserve happens under the state lock, so two identical deliveries at once
    /// never both pass.
    ///
    /// The reservation is one line appended to `seen-tokens`, naming this process, without
    /// waiting for the disk (see state.rs for why that is enough). The delivery is accepted
    /// when its marker holds the token (`enqueue` puts it there). A reservation whose
    /// process is gone was never accepted, or its token is in the marker or settled: it
    /// holds nothing by itself, so that the forge's retry of a 429, a 500 or a delivery
    /// killed before its marker is built. The file is tidied by the builder that settles
    /// the marker's tokens (`settle_tokens`), never here.
    ///
    /// The second value is true when the file held damaged lines (they are ignored, as a
    /// damaged state file is treated elsewhere, and dropped at the next tidying).
    pub fn claim_token(&self, token: &[u8], now_ms: u128, max_age_secs: u64) -> Result<(Option<TokenClaim>, bool)> {
        let digest: String = Sha256::digest(token).iter().map(|b| format!("{b:02x}")).collect();
        let since = horizon(now_ms, max_age_secs);
        let me = crate::sys::process::Identity::me();
        self.locked(|| {
            let file = self.read_tokens()?;
            let taken = self.waiting_tokens().contains(&digest)
                || file.records.iter().any(|r| r.digest == digest && r.counts(since));
            if taken {
                return Ok((None, file.damaged));
            }
            let mine = TokenRecord {
                digest: digest.clone(),
                at: now_ms,
                claimant: me,
            };
            self.append_token(&mine, file.open_end)?;
            Ok((Some(TokenClaim { digest, at: now_ms }), file.damaged))
        })
    }

    fn tokens_path(&self) -> PathBuf {
        self.dir.join("seen-tokens")
    }

    /// The digests of the tokens the waiting marker holds: accepted, not yet settled.
    fn waiting_tokens(&self) -> Vec<String> {
        fs::read(self.pending_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
            .map(|p| {
                p.tokens
                    .iter()
                    .filter_map(|t| TokenRecord::parse(t))
                    .map(|r| r.digest)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// With the state lock held, before a builder takes a marker that holds `tokens`:
    /// they are recorded as accepted, and this write waits for the disk, so that an
    /// accepted token is on disk in the marker or here at every moment. Off the delivery's
    /// path: a builder does it once per build. The file is tidied on the way: what was
    /// received before `since` (ms, `horizon`), reservations whose process is gone and
    /// damaged lines are dropped; live reservations stay.
    pub(super) fn settle_tokens(&self, tokens: &[String], since: u128) -> Result<()> {
        let taken: Vec<TokenRecord> = tokens.iter().filter_map(|t| TokenRecord::parse(t)).collect();
        if taken.is_empty() {
            return Ok(());
        }
        let mut records = self.read_tokens()?.records;
        records.retain(|r| r.counts(since) && !taken.iter().any(|t| t.digest == r.digest));
        records.extend(taken);
        let text: String = records.iter().map(|r| r.line()).collect();
        let path = self.tokens_path();
        write_replacing(&path, text.as_bytes(), Wait::Whole)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// The records of `seen-tokens`; a line that is not one (bad bytes, a torn write) is
    /// skipped and reported, never an error: the file only narrows replays.
    fn read_tokens(&self) -> Result<TokenFile> {
        let path = self.tokens_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TokenFile::default()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let mut file = TokenFile {
            open_end: !bytes.is_empty() && !bytes.ends_with(b"\n"),
            ..TokenFile::default()
        };
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match std::str::from_utf8(line).ok().and_then(TokenRecord::parse) {
                Some(r) => file.records.push(r),
                None => file.damaged = true,
            }
        }
        Ok(file)
    }

    /// One record at the end of the file, in one write(2). After a line cut short (a power
    /// cut during an append), on a line of its own, so that it is read.
    fn append_token(&self, record: &TokenRecord, open_end: bool) -> Result<()> {
        let path = self.tokens_path();
        let line = if open_end {
            format!("\n{}", record.line())
        } else {
            record.line()
        };
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

/// What `seen-tokens` holds, as read.
#[derive(Debug, Default)]
struct TokenFile {
    records: Vec<TokenRecord>,
    /// Lines that are not records were skipped.
    damaged: bool,
    /// The last line has no newline: cut short.
    open_end: bool,
}

/// One line of `seen-tokens`: `<sha256 hex> <ms>` for an accepted token, with
/// ` <pid>:<start>` added for a reservation (`claim_token`) not yet settled.
#[derive(Debug, Clone, PartialEq)]
struct TokenRecord {
    digest: String,
    at: u128,
    claimant: Option<crate::sys::process::Identity>,
}

impl TokenRecord {
    fn parse(line: &str) -> Option<TokenRecord> {
        let mut parts = line.trim_end().split(' ');
        let digest = parts
            .next()
            .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))?;
        let at = parts.next()?.parse().ok()?;
        let claimant = match parts.next() {
            None => None,
            Some(c) => Some(crate::sys::process::Identity::parse(c)?),
        };
        Some(TokenRecord {
            digest: digest.to_string(),
            at,
            claimant,
        })
    }

    /// Whether this record holds its token at the time whose horizon is `since`: an
    /// accepted one until it expires, a reservation while its process lives.
    fn counts(&self, since: u128) -> bool {
        self.at >= since && self.claimant.as_ref().is_none_or(|c| c.alive())
    }

    fn line(&self) -> String {
        match &self.claimant {
            None => format!("{} {}\n", self.digest, self.at),
            Some(c) => format!("{} {} {c}\n", self.digest, self.at),
        }
    }
}

/// A Gitee signing token reserved for the delivery being answered (`claim_token`). It is
/// accepted by going into the delivery's marker (`Pending::tokens`, `enqueue`); dropped
/// instead, it holds nothing once this process is gone.
#[derive(Debug)]
pub struct TokenClaim {
    digest: String,
    at: u128,
}

impl TokenClaim {
    /// How the marker holds it: as `seen-tokens` holds an accepted token.
    pub fn marker_line(&self) -> String {
        format!("{} {}", self.digest, self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::state::tests::temp_state;

    fn marker(delivery: &str, tokens: Vec<String>) -> Pending {
        Pending {
            delivery: delivery.into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            received: String::new(),
            tokens,
        }
    }

    /// Reserves `tok` and accepts it as `enqueue` does (into the marker), then takes the
    /// marker as a builder does; true when it was seen (or reserved) before.
    fn seen_before(s: &HookState, tok: &[u8], now: u128) -> bool {
        match s.claim_token(tok, now, 3600).unwrap().0 {
            Some(c) => {
                s.mark_pending(&marker("d", vec![c.marker_line()])).unwrap();
                s.take_pending(horizon(now, 3600)).unwrap().unwrap();
                false
            }
            None => true,
        }
    }

    #[test]
    fn replayed_tokens_are_seen_and_expire() {
        let s = temp_state("tokens");
        assert!(!seen_before(&s, b"tok", 1_000_000_000));
        assert!(seen_before(&s, b"tok", 1_000_000_500));
        assert!(!seen_before(&s, b"other", 1_000_000_600));
        // far later the first record no longer counts, and the next tidying drops it
        assert!(!seen_before(&s, b"tok", 1_000_000_000 + 7_200_001));
        assert!(!seen_before(&s, b"third", 1_000_000_000 + 7_200_601));
        let text = fs::read_to_string(s.dir.join("seen-tokens")).unwrap();
        assert_eq!(text.lines().count(), 2, "only the new tok and third: {text}");
        assert!(!text.contains("tok"), "tokens are stored hashed");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_reservation_holds_while_its_process_lives_and_a_marker_while_it_waits() {
        let s = temp_state("claims");
        let c = s.claim_token(b"tok", 1_000, 3600).unwrap().0.unwrap();
        assert!(
            s.claim_token(b"tok", 1_001, 3600).unwrap().0.is_none(),
            "a live reservation is taken"
        );
        // A reservation of a process that is gone holds nothing by itself: that delivery
        // was never accepted (a 429, a 500, killed before its marker).
        let digest = c.marker_line().split(' ').next().unwrap().to_string();
        let dead = format!("{digest} 1000 999999999:1\n");
        fs::write(s.dir.join("seen-tokens"), &dead).unwrap();
        let retry = s.claim_token(b"tok", 1_002, 3600).unwrap().0.expect("the retry passes");
        // The waiting marker holds an accepted token even when `seen-tokens` does not
        // (its reservation was never written to disk before a power cut).
        fs::remove_file(s.dir.join("seen-tokens")).unwrap();
        s.mark_pending(&marker("d1", vec![retry.marker_line()])).unwrap();
        assert!(s.claim_token(b"tok", 1_003, 3600).unwrap().0.is_none());
        // a newer marker keeps the tokens of the one it replaces, until a builder takes it
        s.mark_pending(&marker("d2", Vec::new())).unwrap();
        assert!(s.claim_token(b"tok", 1_004, 3600).unwrap().0.is_none());
        // A live reservation of another token and a dead one are in the file.
        let other = s.claim_token(b"other", 1_005, 3600).unwrap().0.unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(s.dir.join("seen-tokens"))
            .unwrap()
            .write_all(format!("{} 1006 999999999:1\n", "ab".repeat(32)).as_bytes())
            .unwrap();
        let taken = s.take_pending(0).unwrap().unwrap();
        assert_eq!((taken.delivery.as_str(), taken.tokens.len()), ("d2", 1));
        // Taken: settled in seen-tokens as accepted, the file tidied; the live reservation
        // stays.
        let text = fs::read_to_string(s.dir.join("seen-tokens")).unwrap();
        assert!(text.contains(&format!("{digest} 1002\n")), "{text}");
        assert!(!text.contains(&"ab".repeat(32)), "{text}");
        let other_digest = other.marker_line().split(' ').next().unwrap().to_string();
        assert!(text.contains(&format!("{other_digest} 1005 ")), "{text}");
        assert!(s.claim_token(b"tok", 1_007, 3600).unwrap().0.is_none());
        assert!(s.claim_token(b"other", 1_008, 3600).unwrap().0.is_none());
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_reservation_after_a_line_cut_short_is_on_a_line_of_its_own() {
        let s = temp_state("cut");
        fs::write(s.dir.join("seen-tokens"), format!("{} 10", "cd".repeat(32))).unwrap();
        assert!(s.claim_token(b"tok", 1_000, 3600).unwrap().0.is_some());
        assert!(
            s.claim_token(b"tok", 1_001, 3600).unwrap().0.is_none(),
            "the reservation was read"
        );
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_damaged_token_file_is_read_as_what_still_parses() {
        let s = temp_state("damaged");
        fs::write(s.dir.join("seen-tokens"), b"\xff\xfe\x00garbage\nnot a record\n").unwrap();
        let (claim, damaged) = s.claim_token(b"tok", 1_000, 3600).unwrap();
        assert!(damaged);
        s.mark_pending(&marker("d", vec![claim.unwrap().marker_line()]))
            .unwrap();
        s.take_pending(0).unwrap().unwrap();
        let (claim, damaged) = s.claim_token(b"tok", 1_001, 3600).unwrap();
        assert!(claim.is_none() && !damaged, "the tidied file is clean");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }
}
