//! Phase 2 of a publish, and all of a rollback: every target switched to one release at
//! once, and switched back when one of them fails.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::scripts::{parse_probe, probe_script, switch_back_script, Probe, Served};
use super::session::{first_failure, Connections, Session};
use super::{fail, Failure, Target};
use crate::sys::text::shell_quote;
use crate::sys::time;

/// How long a target may take to answer its rename. One rename(2) answers in a round trip;
/// while one target keeps us waiting the others already serve the new release, so one
/// that has not answered in this time is treated as failed, and as maybe switched: every
/// target is put back (docs/hosts.md).
pub(super) const SWITCH_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn unix_ms(at: Instant) -> f64 {
    let now = Instant::now();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let back = now.saturating_duration_since(at);
    (wall.saturating_sub(back)).as_secs_f64() * 1000.0
}

/// The switch of every target to `release`, both steps: the new symlinks beside `path`
/// everywhere, then the renames everywhere at once. On a failure the targets that switched
/// are switched back and the error names the first target that failed.
pub(super) fn switch_all(conns: &mut Connections, probes: &[Probe], release: &str) -> Result<(), Failure> {
    let kept = format!("0000-{}-before-deploy-hook", time::compact(time::now()));
    let made = conns.each(|_, t, s| {
        s.run_ok(
            "making the new symlink",
            &format!(
                "rm -f -- {l} && ln -s -- {v} {l}",
                l = shell_quote(&t.switch_link()),
                v = shell_quote(&t.link_value(release))
            ),
        )
        .map(|_| ())
    });
    if let Some(f) = first_failure(&made) {
        conns.each(|_, t, s| {
            s.run(&format!("rm -f -- {}", shell_quote(&t.switch_link())))
                .map(|_| ())
        });
        return Err(f);
    }

    // The renames: written to every host first, answers read after, so the hosts switch
    // within one round trip of each other.
    let n = conns.targets.len();
    let mut sent = Vec::with_capacity(n);
    let first_send = Instant::now();
    for (i, probe) in probes.iter().enumerate().take(n) {
        let t = conns.targets[i].clone();
        let (p, l) = (shell_quote(&t.path), shell_quote(&t.switch_link()));
        let script = match probe.served {
            Served::Folder => format!(
                "mv -T -- {p} {k} && mv -T -- {l} {p}",
                k = shell_quote(&format!("{}/{kept}", t.releases()))
            ),
            _ => format!("mv -T -- {l} {p}"),
        };
        sent.push(match conns.session(i) {
            Some(s) => s.send(&script),
            None => Err("no connection".into()),
        });
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(n);
    for (i, seq) in sent.into_iter().enumerate() {
        let answer = match (seq, conns.session(i)) {
            (Ok(seq), Some(s)) => match s.wait(seq, SWITCH_TIMEOUT) {
                Ok((0, _, at)) => Answer::Switched(at),
                Ok((code, out, _)) => Answer::Failed(format!(
                    "switching {} failed (exit status {code}): {}",
                    conns.targets[i].path,
                    out.replace('\n', " / ")
                )),
                // No answer in time, or the connection ended after the rename was sent: the
                // rename may have been done, or may be done yet.
                Err(e) => Answer::Unknown(e),
            },
            (Err(e), _) => Answer::Failed(e),
            (Ok(_), None) => Answer::Failed("no connection".into()),
        };
        answers.push(answer);
    }
    let failed: Vec<usize> = (0..n).filter(|i| !matches!(answers[*i], Answer::Switched(_))).collect();
    if failed.is_empty() {
        let last = answers
            .iter()
            .filter_map(|a| match a {
                Answer::Switched(at) => Some(*at),
                _ => None,
            })
            .max()
            .unwrap_or(first_send);
        let spread = last.saturating_duration_since(first_send);
        conns.tools.note(&format!(
            "switched {n} target{} to {release}: switch spread {:.1} ms (first rename sent at {:.3}, last answer at {:.3}, unix ms)",
            if n == 1 { "" } else { "s" },
            spread.as_secs_f64() * 1000.0,
            unix_ms(first_send),
            unix_ms(last)
        ));
        return Ok(());
    }
    put_all_back(conns, probes, &answers, release, &kept);
    conns.each(|_, t, s| {
        s.run(&format!("rm -f -- {}", shell_quote(&t.switch_link())))
            .map(|_| ())
    });
    let i = failed[0];
    let msg = match &answers[i] {
        Answer::Failed(e) => e.clone(),
        Answer::Unknown(e) => format!("{e} to the switch"),
        Answer::Switched(_) => String::new(),
    };
    Err(fail(&conns.targets[i].name, msg))
}

/// How a target answered its rename.
enum Answer {
    Switched(Instant),
    /// It answered that the rename failed: it serves what it served (but see `Served::Folder`).
    Failed(String),
    /// No answer: it may have switched, or may yet (the rename was sent).
    Unknown(String),
}

/// Puts back every target that switched or may have (and the folder of one whose first
/// rename, the old folder aside, may have gone through), at once, and checks with a probe
/// that each serves what it served. A target whose rename has not answered is put back over
/// the same connection: its `sh` runs the switch back only after that rename, so a late
/// rename can never land after it. The log says which targets are back, and in capitals
/// which could not be put back.
fn put_all_back(conns: &mut Connections, probes: &[Probe], answers: &[Answer], release: &str, kept: &str) {
    let needs = |i: usize| match &answers[i] {
        Answer::Switched(_) | Answer::Unknown(_) => true,
        Answer::Failed(_) => probes[i].served == Served::Folder,
    };
    for (i, a) in answers.iter().enumerate() {
        if let Answer::Unknown(why) = a {
            conns.tools.note(&format!(
                "{}: {why} to the switch: it may have switched, or may yet; putting it back once its rename is done",
                conns.targets[i].name
            ));
        }
    }
    let mut back = conns.each(|i, t, s| match needs(i) {
        true => put_back(t, s, &probes[i].served, kept).map(Some),
        false => Ok(None),
    });
    // A connection that ended: put back over a new one (opened here, on the thread that
    // outlives it: a session dies with the thread that started it).
    for i in 0..back.len() {
        if needs(i) && back[i].is_err() && conns.reopen_if_lost(i) {
            let t = conns.targets[i].clone();
            back[i] = match conns.session(i) {
                Some(s) => put_back(&t, s, &probes[i].served, kept)
                    .map(Some)
                    .map_err(|m| fail(&t.name, m)),
                None => Err(fail(&t.name, "no connection")),
            };
        }
    }
    for (i, result) in back.into_iter().enumerate() {
        let t = &conns.targets[i];
        let what = match &probes[i].served {
            Served::Release(Some(r)) => r.clone(),
            Served::Folder => "its old folder".into(),
            _ => "nothing".into(),
        };
        match result {
            Ok(None) => {}
            Ok(Some(())) => conns
                .tools
                .note(&format!("{}: switched back to {what} (checked: it serves it)", t.name)),
            Err(f) => conns.tools.note(&format!(
                "{}: COULD NOT BE PUT BACK: it may serve {release} while the others serve what they served ({}); `deploy-hook status` shows what each serves, and the next build or a rollback puts it in line",
                t.name, f.message
            )),
        }
    }
}

/// Switches one target back to what it served, then asks it what it serves now.
fn put_back(t: &Target, s: &mut Session, before: &Served, kept: &str) -> Result<(), String> {
    s.run_ok("switching back", &switch_back_script(t, before, kept))?;
    let now = parse_probe(&s.run_ok("checking what it serves", &probe_script(t))?).served;
    if now == *before {
        Ok(())
    } else {
        Err(format!("after the switch back it serves {now:?}, not {before:?}"))
    }
}
