//! Phase 2 of a publish, and all of a rollback: every target switched to one release at
//! once, and switched back when one of them fails.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::scripts::{switch_back_script, Probe, Served};
use super::session::{first_failure, Connections, COMMAND_TIMEOUT};
use super::{fail, Failure};
use crate::sys::text::shell_quote;
use crate::sys::time;

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
    let mut answers: Vec<Result<Instant, String>> = Vec::with_capacity(n);
    for (i, seq) in sent.into_iter().enumerate() {
        let answer = match (seq, conns.session(i)) {
            (Ok(seq), Some(s)) => match s.wait(seq, COMMAND_TIMEOUT) {
                Ok((0, _, at)) => Ok(at),
                Ok((code, out, _)) => Err(format!(
                    "switching {} failed (exit status {code}): {}",
                    conns.targets[i].path,
                    out.replace('\n', " / ")
                )),
                Err(e) => Err(e),
            },
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err("no connection".into()),
        };
        answers.push(answer);
    }
    let failed: Vec<usize> = (0..n).filter(|i| answers[*i].is_err()).collect();
    if failed.is_empty() {
        let last = answers
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .max()
            .copied()
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

    // Put back every target whose rename went through, and the folder of a failed target
    // whose first rename (the old folder aside) went through but not its second.
    for (i, answer) in answers.iter().enumerate() {
        let t = conns.targets[i].clone();
        let before = probes[i].served.clone();
        let script = match (answer, &before) {
            (Ok(_), _) => switch_back_script(&t, &before, &kept),
            (Err(_), Served::Folder) => switch_back_script(&t, &before, &kept),
            (Err(_), _) => continue,
        };
        let what = match &before {
            Served::Release(Some(r)) => r.clone(),
            Served::Folder => "its old folder".into(),
            _ => "nothing".into(),
        };
        let result = match conns.session(i) {
            Some(s) => s.run_ok("switching back", &script),
            None => Err("no connection".into()),
        };
        match (answer, result) {
            (Ok(_), Ok(_)) => conns.tools.note(&format!("{}: switched back to {what}", t.name)),
            (Ok(_), Err(e)) => conns.tools.note(&format!(
                "{}: COULD NOT BE SWITCHED BACK: it serves {release} while the others serve the old release ({e}); `deploy-hook status` shows it, and the next build or rollback fixes it",
                t.name
            )),
            (Err(_), _) => {}
        }
    }
    conns.each(|_, t, s| {
        s.run(&format!("rm -f -- {}", shell_quote(&t.switch_link())))
            .map(|_| ())
    });
    let i = failed[0];
    let msg = match &answers[i] {
        Err(e) => e.clone(),
        Ok(_) => String::new(),
    };
    Err(fail(&conns.targets[i].name, msg))
}
