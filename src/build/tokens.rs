//! The replay check of Gitee's signing mode: `seen-tokens` in the hook's state folder.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::build::state::{write_atomic, HookState};
use crate::error::{Error, Result};

impl HookState {
    /// The replay check of Gitee's signing mode, first half: claims `token` for this
    /// delivery, or says it is taken (`None`): accepted before, or claimed right now by
    /// another live delivery. The claim is only a reservation: `TokenClaim::accept` records
    /// the token as seen once the delivery is accepted for a build, and dropping the claim
    /// unaccepted (a 429, a 500, a ping) gives the token back, so that a retry is built.
    /// Check-and-claim happens under the state lock, so two identical deliveries at once
    /// never both pass.
    ///
    /// Tokens are kept (hashed) for twice the allowed clock skew, the longest a replayed
    /// token could still pass the timestamp check. The second value is true when the file
    /// held damaged lines (they are dropped, as a damaged state file is treated elsewhere).
    pub fn claim_token(&self, token: &[u8], now_ms: u128, max_age_secs: u64) -> Result<(Option<TokenClaim<'_>>, bool)> {
        let digest: String = Sha256::digest(token).iter().map(|b| format!("{b:02x}")).collect();
        let horizon = now_ms.saturating_sub(u128::from(max_age_secs) * 2000);
        let me = crate::sys::process::Identity::me();
        self.locked(|| {
            let (mut records, damaged) = self.read_tokens()?;
            records.retain(|r| r.at >= horizon && r.claimant.as_ref().is_none_or(|c| c.alive()));
            if records.iter().any(|r| r.digest == digest) {
                self.write_tokens(&records)?;
                return Ok((None, damaged));
            }
            records.push(TokenRecord {
                digest: digest.clone(),
                at: now_ms,
                claimant: me.clone(),
            });
            self.write_tokens(&records)?;
            Ok((
                Some(TokenClaim {
                    state: self,
                    digest,
                    claimant: me,
                    done: false,
                }),
                damaged,
            ))
        })
    }

    fn tokens_path(&self) -> PathBuf {
        self.dir.join("seen-tokens")
    }

    /// The records of `seen-tokens`; a line that is not one (bad bytes, a torn write) is
    /// dropped and reported, never an error: the file only narrows replays.
    fn read_tokens(&self) -> Result<(Vec<TokenRecord>, bool)> {
        let path = self.tokens_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let mut damaged = false;
        let mut records = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match std::str::from_utf8(line).ok().and_then(TokenRecord::parse) {
                Some(r) => records.push(r),
                None => damaged = true,
            }
        }
        Ok((records, damaged))
    }

    fn write_tokens(&self, records: &[TokenRecord]) -> Result<()> {
        let text: String = records.iter().map(|r| r.line()).collect();
        let path = self.tokens_path();
        write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// Rewrites this claim's record: accepted (`claimant` removed) or given back (gone).
    fn settle(&self, digest: &str, claimant: &Option<crate::sys::process::Identity>, accept: bool) -> Result<()> {
        self.locked(|| {
            let (mut records, _) = self.read_tokens()?;
            let mine = |r: &TokenRecord| r.digest == digest && r.claimant.is_some() && r.claimant == *claimant;
            if accept {
                for r in records.iter_mut().filter(|r| mine(r)) {
                    r.claimant = None;
                }
            } else {
                records.retain(|r| !mine(r));
            }
            self.write_tokens(&records)
        })
    }
}

/// One line of `seen-tokens`: `<sha256 hex> <ms>` for an accepted token, with
/// ` <pid>:<start>` added while a delivery that is still being answered claims it.
#[derive(Debug, Clone, PartialEq)]
struct TokenRecord {
    digest: String,
    at: u128,
    claimant: Option<crate::sys::process::Identity>,
}

impl TokenRecord {
    fn parse(line: &str) -> Option<TokenRecord> {
        let mut parts = line.split(' ');
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

    fn line(&self) -> String {
        match &self.claimant {
            None => format!("{} {}\n", self.digest, self.at),
            Some(c) => format!("{} {} {c}\n", self.digest, self.at),
        }
    }
}

/// A Gitee signing token reserved for the delivery being answered; see `claim_token`.
/// Dropped without `accept`, it is given back.
pub struct TokenClaim<'a> {
    state: &'a HookState,
    digest: String,
    claimant: Option<crate::sys::process::Identity>,
    done: bool,
}

impl TokenClaim<'_> {
    /// The delivery was accepted for a build: its token is seen from now on.
    pub fn accept(mut self) -> Result<()> {
        self.done = true;
        self.state.settle(&self.digest, &self.claimant, true)
    }
}

impl Drop for TokenClaim<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.state.settle(&self.digest, &self.claimant, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::state::tests::temp_state;

    /// Claims `tok` and accepts it; true when it was seen (or claimed) before.
    fn seen_before(s: &HookState, tok: &[u8], now: u128) -> bool {
        match s.claim_token(tok, now, 3600).unwrap().0 {
            Some(c) => {
                c.accept().unwrap();
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
        // far later the first record is pruned
        assert!(!seen_before(&s, b"tok", 1_000_000_000 + 7_200_001));
        let text = fs::read_to_string(s.dir.join("seen-tokens")).unwrap();
        assert!(!text.contains("tok"), "tokens are stored hashed");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_claim_given_back_leaves_the_token_usable_and_a_live_claim_blocks() {
        let s = temp_state("claims");
        let c = s.claim_token(b"tok", 1_000, 3600).unwrap().0.unwrap();
        assert!(
            s.claim_token(b"tok", 1_001, 3600).unwrap().0.is_none(),
            "a live claim is taken"
        );
        drop(c);
        let c = s.claim_token(b"tok", 1_002, 3600).unwrap().0.expect("given back");
        c.accept().unwrap();
        assert!(s.claim_token(b"tok", 1_003, 3600).unwrap().0.is_none());
        // a claim of a process that is gone does not hold the token
        let dead = format!("{} 5 999999999:1\n", "ab".repeat(32));
        fs::write(s.dir.join("seen-tokens"), dead).unwrap();
        let fresh = s.claim_token(b"x", 10, 3600).unwrap();
        assert!(fresh.0.is_some() && !fresh.1);
        let text = fs::read_to_string(s.dir.join("seen-tokens")).unwrap();
        assert!(!text.contains(&"ab".repeat(32)), "{text}");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_damaged_token_file_is_read_as_what_still_parses() {
        let s = temp_state("damaged");
        fs::write(s.dir.join("seen-tokens"), b"\xff\xfe\x00garbage\nnot a record\n").unwrap();
        let (claim, damaged) = s.claim_token(b"tok", 1_000, 3600).unwrap();
        assert!(damaged);
        claim.unwrap().accept().unwrap();
        let (claim, damaged) = s.claim_token(b"tok", 1_001, 3600).unwrap();
        assert!(claim.is_none() && !damaged, "the rewritten file is clean");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }
}
